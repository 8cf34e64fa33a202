"""GLUE tasks as data, their loading (Hub or local copies), tokenisation and metrics.

Scores are evaluated on the validation sets, as the NEAT paper does (MNLI: validation_matched). Metrics come
from scikit-learn and scipy: CoLA Matthews correlation, STS-B Pearson (and Spearman) of a one-output
regression, MRPC and QQP accuracy and F1, the others accuracy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HUB_ID = "nyu-mll/glue"
REVISION = "main"
SPLIT_SEED = 42      # fixed seed of the held-out selection slice
SPLITS = ("train", "validation")
FILE_TYPES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
DATA_DIR_HELP = ("DIR/<task>: a datasets.save_to_disk folder, or train and validation files "
                 "(.csv, .json, .jsonl or .parquet, e.g. DIR/sst2/train.csv and DIR/sst2/validation.csv)")


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: its text columns, label count (1: regression), scores and validation split."""

    name: str
    title: str
    keys: tuple[str, ...]              # one text column, or the two of a sentence pair
    num_labels: int
    metrics: tuple[str, ...]           # the first is the task's score (the paper's table)
    validation: str = "validation"


TASKS: dict[str, GlueTask] = {t.name: t for t in [
    GlueTask("cola", "CoLA", ("sentence",), 2, ("matthews",)),
    GlueTask("sst2", "SST-2", ("sentence",), 2, ("accuracy",)),
    GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), 2, ("accuracy", "f1")),
    GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), 1, ("pearson", "spearman")),
    GlueTask("qqp", "QQP", ("question1", "question2"), 2, ("accuracy", "f1")),
    GlueTask("mnli", "MNLI", ("premise", "hypothesis"), 3, ("accuracy",), validation="validation_matched"),
    GlueTask("qnli", "QNLI", ("question", "sentence"), 2, ("accuracy",)),
    GlueTask("rte", "RTE", ("sentence1", "sentence2"), 2, ("accuracy",)),
]}


class GlueDataUnavailableError(RuntimeError):
    """A GLUE task can be neither downloaded nor found locally, or its local copy lacks the task's columns."""


def source_lines(names: list[str], data_dir: str | None) -> list[str]:
    """Where each task of a plan comes from, for the dry run: the Hub id @ revision (or the local folder), and the
    splits used."""
    lines = ["", "| task | source | splits |", "|---|---|---|"]
    for name in dict.fromkeys(names):
        task = get_task(name)
        where = f"--data-dir {data_dir}/{name}" if data_dir else f"{HUB_ID} ({name}) @ {REVISION}"
        lines.append(f"| {name} | {where} | train, {task.validation} |")
    return lines


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
def unavailable(task: GlueTask, why: str) -> GlueDataUnavailableError:
    return GlueDataUnavailableError(
        f"GLUE task {task.name!r} ({HUB_ID}) is not available: {why}. Download it where the Hub is reachable "
        f"and pass --data-dir DIR ({DATA_DIR_HELP}).")


def _split_files(folder: Path, names: tuple[str, ...]) -> Path | None:
    found = [p for n in names for p in sorted(folder.glob(f"{n}.*")) if p.suffix in FILE_TYPES]
    return found[0] if found else None


def _load_local(folder: Path, task: GlueTask) -> dict[str, Any]:
    import datasets

    if not folder.is_dir():
        raise unavailable(task, f"{folder} does not exist")
    if (folder / "dataset_dict.json").is_file():
        loaded = dict(datasets.load_from_disk(str(folder)))
        return {"train": loaded.get("train"), "validation": loaded.get(task.validation, loaded.get("validation"))}
    files = {"train": _split_files(folder, ("train",)),
             "validation": _split_files(folder, tuple(dict.fromkeys((task.validation, "validation"))))}
    missing = [split for split, path in files.items() if path is None]
    if missing:
        raise unavailable(task, f"{folder} has no {' or '.join(missing)} file")
    return {split: datasets.load_dataset(FILE_TYPES[path.suffix], data_files=str(path), split="train")
            for split, path in files.items()}


def load_task(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"train", "validation"} `datasets.Dataset`s of task `name`: from DATA_DIR/<name> when `data_dir` is
    given, else from the Hub (nyu-mll/glue). Columns: the task's text keys and `label`."""
    import datasets

    task = get_task(name)
    if data_dir is not None:
        loaded = _load_local(Path(data_dir) / task.name, task)
    else:
        try:
            hub = datasets.load_dataset(HUB_ID, task.name)
        except (ConnectionError, OSError) as err:  # offline without a cached copy, network failures
            raise unavailable(task, f"no cached copy, and the download failed ({type(err).__name__})") from None
        loaded = {"train": hub["train"], "validation": hub[task.validation]}
    for split in SPLITS:
        missing = [c for c in (*task.keys, "label") if loaded[split] is None or c not in loaded[split].column_names]
        if missing:
            columns = loaded[split].column_names if loaded[split] is not None else "no such split"
            raise GlueDataUnavailableError(f"GLUE task {task.name!r}: the {split} split lacks column(s) {missing} "
                                           f"(it has {columns}).")
    return {s: loaded[s].select_columns([*task.keys, "label"]) for s in SPLITS}


def tokenize(data: Any, tokenizer: Any, task: str | GlueTask, max_length: int = 512) -> Any:
    """`input_ids` / `attention_mask` (truncated to max_length, unpadded) and `labels` (float for STS-B)."""
    task = get_task(task) if isinstance(task, str) else task

    def encode(batch: dict[str, list]) -> dict[str, Any]:
        out = tokenizer(*(batch[k] for k in task.keys), truncation=True, max_length=max_length)
        labels = np.asarray(batch["label"], dtype=np.float32 if task.num_labels == 1 else np.int64)
        return {**out, "labels": labels.tolist()}

    return data.map(encode, batched=True, remove_columns=data.column_names, desc=f"tokenizing {task.name}")


def hold_out(train: Any, fraction: float, at_most: int, seed: int = SPLIT_SEED) -> tuple[Any, Any]:
    """(rest, held out): `fraction` of `train` (at most `at_most` examples, at least one) split off with a fixed
    seed, to select hyper-parameters on while the validation set stays for reporting."""
    size = max(1, min(at_most, round(fraction * len(train))))
    parts = train.train_test_split(test_size=size, seed=seed)
    return parts["train"], parts["test"]
