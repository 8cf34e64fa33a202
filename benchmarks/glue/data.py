"""GLUE tasks as data, their loading (Hub or local copies), tokenisation and metrics.

The Hub copy (nyu-mll/glue) loads at a commit (core.sources), only the train and validation splits; every copy
(Hub or --data-dir) is checked against the rows and label counts of huggingface/datasets' GLUE dataset_infos.json
before the tokenizer or the model load. Scores are evaluated on the validation sets, as the NEAT paper does (MNLI:
validation_matched). Metrics come from scikit-learn and scipy: CoLA Matthews correlation, STS-B Pearson (and
Spearman) of a one-output regression, MRPC and QQP accuracy and F1, the others accuracy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.sources import Expected, Pin, Sources, load_hub_dataset, shown_revision, verify

PIN = Pin("nyu-mll/glue", "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
          "the revision public code pins for nyu-mll/glue (e.g. hf://datasets/nyu-mll/glue@bcdcba79.../mrpc/"
          "train-00000-of-00001.parquet, datasets cache folders glue/<task>/0.0.0/bcdcba79...); whether it is main's "
          "head was not verified (another commit, c234b36c1609cbe2b00dc63c26e1b196145b07d1, added the mnli_matched "
          "files)")
HUB_ID = PIN.repo
COUNTS = ("huggingface/datasets datasets/glue/dataset_infos.json @ 040102f100964a33fd334e2695f1c493fa6b92db (the "
          "nyu-mll/glue card gives the same)")
SPLIT_SEED = 42      # fixed seed of the held-out selection slice
SPLITS = ("train", "validation")
FILE_TYPES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DATA_DIR_HELP = ("DIR/<task>: a datasets.save_to_disk folder, or train and validation files "
                 "(.csv, .json, .jsonl or .parquet, e.g. DIR/sst2/train.csv and DIR/sst2/validation.csv; a copy of "
                 "the nyu-mll/glue repository, DIR/<task>/train-*.parquet, works too)")


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its text columns, label count (1: regression), scores and validation split."""

    name: str
    title: str
    keys: tuple[str, ...]              # one text column, or the two of a sentence pair
    num_labels: int
    metrics: tuple[str, ...]           # the first is the task's score (the paper's table)
    rows: tuple[int, int]              # train and validation rows (COUNTS)
    validation: str = "validation"

    @property
    def expected(self) -> Expected:
        """Rows of the splits used and the label count (STS-B: a regression, none), from COUNTS."""
        return Expected(dict(zip(("train", self.validation), self.rows)), self.num_labels if self.num_labels > 1
                        else None, COUNTS)


TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", ("sentence",), 2, ("matthews",), (8551, 1043)),
    GlueTask("sst2", "SST-2", ("sentence",), 2, ("accuracy",), (67349, 872)),
    GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), 2, ("accuracy", "f1"), (3668, 408)),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), 1, ("pearson", "spearman"), (5749, 1500)),
    GlueTask("qqp", "QQP", ("question1", "question2"), 2, ("accuracy", "f1"), (363846, 40430)),
    GlueTask("mnli", "MNLI", ("premise", "hypothesis"), 3, ("accuracy",), (392702, 9815),
             validation="validation_matched"),
    GlueTask("qnli", "QNLI", ("question", "sentence"), 2, ("accuracy",), (104743, 5463)),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), 2, ("accuracy",), (2490, 277)),
]}


class GlueDataUnavailableError(RuntimeError):
    """A GLUE task can be neither downloaded nor found locally, or its local copy lacks the task's columns."""


def source_rows(names: list[str], data_dir: str | None, out: str | None = None,
                given: dict[str, str] | None = None) -> list[tuple[str, str, str, Expected]]:
    """Where each task of a plan comes from, for the dry run: the Hub id @ revision (or the local folder), the splits
    used, the expected counts."""
    rows = []
    for name in dict.fromkeys(names):
        task = get_task(name)
        where = (f"--data-dir {Path(data_dir) / name} (a local copy: verified by counts)" if data_dir else
                 shown_revision(PIN, out, given).replace(HUB_ID, f"{HUB_ID} ({name})", 1))
        rows.append((name, where, f"train, {task.validation}", task.expected))
    return rows


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise ValueError(f"Unknown GLUE task {name!r}; choose from {', '.join(TASKS)}.")
    return TASKS[name]


# --- metrics ------------------------------------------------------------------------------------------
def metrics(task: str | GlueTask, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metrics: predictions are class ids, or the regression outputs for STS-B."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    task = get_task(task) if isinstance(task, str) else task
    score = {"matthews": matthews_corrcoef, "accuracy": accuracy_score, "f1": f1_score,
             "pearson": lambda y, p: pearsonr(y, p)[0], "spearman": lambda y, p: spearmanr(y, p)[0]}
    return {m: float(score[m](labels, predictions)) for m in task.metrics}


# --- data ---------------------------------------------------------------------------------------------
INSTEAD = f"--data-dir DIR ({DATA_DIR_HELP})"


def unavailable(task: GlueTask, why: str) -> GlueDataUnavailableError:
    return GlueDataUnavailableError(
        f"GLUE task {task.name!r} ({HUB_ID}) is not available: {why}. Download it where the Hub is reachable "
        f"and pass {INSTEAD}.")


def _split_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """The files of the first split of `names` found: `<split>.<ext>`, or the shards `<split>-*.parquet`."""
    for name in names:
        found = [p for p in sorted(folder.glob(f"{name}.*")) if p.suffix in FILE_TYPES]
        found = found[:1] or sorted(folder.glob(f"{name}-*.parquet"))
        if found:
            return found
    return []


def _load_local(folder: Path, task: GlueTask) -> dict[str, Any]:
    import datasets

    if not folder.is_dir():
        raise unavailable(task, f"{folder} does not exist")
    if (folder / "dataset_dict.json").is_file():
        loaded = dict(datasets.load_from_disk(str(folder)))
        return {"train": loaded.get("train"), "validation": loaded.get(task.validation, loaded.get("validation"))}
    files = {"train": _split_files(folder, ("train",)),
             "validation": _split_files(folder, tuple(dict.fromkeys((task.validation, "validation"))))}
    missing = [split for split, paths in files.items() if not paths]
    if missing:
        raise unavailable(task, f"{folder} has no {' or '.join(missing)} file")
    return {split: datasets.load_dataset(FILE_TYPES[paths[0].suffix], data_files=[str(p) for p in paths],
                                         split="train")
            for split, paths in files.items()}


def _load_hub(task: GlueTask, sources: Sources) -> tuple[dict[str, Any], str]:
    """Train and validation of `task` from nyu-mll/glue at the commit `sources` resolves (only those splits), and
    where they came from."""
    splits = ["train", task.validation]
    try:
        parts, where = load_hub_dataset(PIN, sources, INSTEAD, f"GLUE task {task.name!r}", task.name, splits)
    except ValueError as err:   # datasets: 'Unknown split "..."' when the copy lacks one
        raise GlueDataUnavailableError(f"GLUE task {task.name!r} ({HUB_ID} @ {sources.found[HUB_ID].revision or 'main'}"
                                       f"): {err} (expected splits {', '.join(splits)}).") from None
    return dict(zip(SPLITS, parts)), where


def load_task(name: str, data_dir: str | os.PathLike | None = None, accept_subset: bool = False,
              sources: Sources | None = None) -> dict[str, Any]:
    """{"train", "validation"} `datasets.Dataset`s of task `name`: from DATA_DIR/<name> when `data_dir` is
    given, else from the Hub (nyu-mll/glue, at the commit `sources` resolves and records); checked against COUNTS
    (`accept_subset`: fewer rows on purpose). Columns: the task's text keys and `label`."""
    task = get_task(name)
    sources = sources if sources is not None else Sources(None)
    if data_dir is not None:
        folder = Path(data_dir) / task.name
        loaded, where = _load_local(folder, task), f"--data-dir {folder}: a local copy"
        sources.local(PIN, HUB_ID, Path(data_dir), "--data-dir")
    else:
        loaded, where = _load_hub(task, sources)
    for split in SPLITS:
        missing = [c for c in (*task.keys, "label") if loaded[split] is None or c not in loaded[split].column_names]
        if missing:
            columns = loaded[split].column_names if loaded[split] is not None else "no such split"
            raise GlueDataUnavailableError(f"GLUE task {task.name!r}: the {split} split lacks column(s) {missing} "
                                           f"(it has {columns}).")
    named = {"train": loaded["train"], task.validation: loaded["validation"]}
    verify(name, named, task.expected, accept_subset=accept_subset, where=where)
    return {s: loaded[s].select_columns([*task.keys, "label"]) for s in SPLITS}


def tokenize(data: Any, tokenizer: Any, task: str | GlueTask, max_length: int = 512) -> Any:
    """`input_ids` / `attention_mask` (truncated to max_length, unpadded) and `labels` (float for STS-B)."""
    task = get_task(task) if isinstance(task, str) else task

    def encode(batch: dict[str, list]) -> dict[str, Any]:
        out = tokenizer(*(batch[k] for k in task.keys), truncation=True, max_length=max_length)
        labels = np.asarray(batch["label"], dtype=np.float32 if task.num_labels == 1 else np.int64)
        return {**out, "labels": labels.tolist()}

    return data.map(encode, batched=True, remove_columns=data.column_names, desc=f"tokenizing {task.name}")


def held_out_size(rows: int, fraction: float, at_most: int) -> int:
    """How many of `rows` training examples `hold_out` sets aside: `fraction`, at most `at_most`, at least one."""
    return max(1, min(at_most, round(fraction * rows)))


def hold_out(train: Any, fraction: float, at_most: int, seed: int = SPLIT_SEED) -> tuple[Any, Any]:
    """(rest, held out): `fraction` of `train` (at most `at_most` examples, at least one) split off with a fixed
    seed, to select hyper-parameters on while the validation set stays for reporting."""
    parts = train.train_test_split(test_size=held_out_size(len(train), fraction, at_most), seed=seed)
    return parts["train"], parts["test"]
