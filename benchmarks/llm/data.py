"""Loading a task's splits from the Hub (or the lineage's files on GitHub) or from local JSON files, into one schema.

Hub data sets and GitHub files load at the commits of their pins (core.sources; --revision overrides), and every
split is checked against the rows its source gives (where found) before the model loads, local copies too
(`accept_subset`: fewer on purpose); the smoke suite's generated files are named as such and not checked.

Every split comes back as a `datasets.Dataset` with the columns instruction / input / output / answer (all
strings). Local copies (--data-dir) follow LLM-Adapters' layout (`commonsense_170k.json`, `<test>/test.json`)
or MiLoRA's (`gsm8k_test.jsonl`, `MATH_test.jsonl`), see `Source.local`; a file may hold the schema's fields
or the source's own columns (MetaMathQA's query/response, GSM8K's question/answer). A file without the needed
fields is one `ReasoningDataError` that names the file, what is missing and what it has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..core.sources import Sources, hub_call, load_hub_dataset, shown_revision, verify
from .answers import derive_answer
from .tasks import REQUIRED, SCHEMA, Source, Task, get_task

DATA_DIR_HELP = ("DIR in LLM-Adapters' layout: commonsense_170k.json and <test>/test.json (boolq, piqa, social_i_qa, "
                 "hellaswag, winogrande, ARC-Easy, ARC-Challenge, openbookqa); for math MetaMathQA-395K.json, "
                 "gsm8k_test.jsonl and MATH_test.jsonl (or gsm8k/test.json, MATH/test.json); JSON or JSON lines with "
                 "instruction/input/output/answer, or the source's own columns")


class ReasoningDataError(RuntimeError):
    """A split can be neither downloaded nor found locally, or its file lacks the fields the task needs."""


def unavailable(what: str, source: Source, why: str) -> ReasoningDataError:
    return ReasoningDataError(f"{what} ({source.hub}) is not available: {why}. Download it where the network is "
                              f"reachable and pass --data-dir DIR ({DATA_DIR_HELP}).")


def unavailable_without_network(task: str) -> ReasoningDataError:
    """The error of a run that needs the Hub (no --data-dir) on a machine without network."""
    spec = get_task(task)
    return unavailable(f"{spec.name} training data", spec.train,
                       "the Hugging Face Hub cannot be reached (no network) and no --data-dir was given")


def _read_json(path: Path) -> Any:
    import datasets

    if path.stat().st_size < 16 and path.read_text().strip() in ("", "[]"):
        raise ReasoningDataError(f"{path} has no examples.")
    try:
        return datasets.load_dataset("json", data_files=str(path), split="train")
    except Exception as err:  # datasets wraps JSON errors in its own DatasetGenerationError
        raise ReasoningDataError(f"{path} is not readable JSON or JSON lines ({type(err).__name__}); expected a "
                                 f"list of records with fields {', '.join(SCHEMA)}.") from None


def _from_hub(what: str, source: Source, sources: Sources) -> tuple[Any, str]:
    """The split from the Hub or its GitHub file, at the commit `sources` resolves; and where from."""
    import datasets

    instead = f"--data-dir DIR ({DATA_DIR_HELP})"
    if not source.is_url:
        return load_hub_dataset(source.pin, sources, instead, what, source.config, source.split)
    revision = sources.revision(source.pin, instead)
    url = source.pin.url(source.path, revision)
    return hub_call(lambda: datasets.load_dataset("json", data_files=url, split="train"), source.pin, revision,
                    instead, what), url


def local_file(data_dir: str | os.PathLike, source: Source) -> Path | None:
    """The first of the source's local file names that exists under `data_dir`."""
    found = [Path(data_dir) / name for name in source.local if (Path(data_dir) / name).is_file()]
    return found[0] if found else None


def to_schema(data: Any, source: Source, where: str) -> Any:
    """`data` with exactly the schema's columns (strings): native columns renamed, `answer` derived where the
    source says how, a missing `input` empty. A missing field is a ReasoningDataError naming `where`."""
    columns = set(data.column_names)
    if not set(REQUIRED) <= columns:
        renames = {old: new for old, new in source.rename.items() if old in columns and new not in columns}
        if renames:
            data, columns = data.rename_columns(renames), (columns - set(renames)) | set(renames.values())
        if "answer" not in columns and source.derive_answer and "output" in columns:
            data = data.map(lambda row: {"answer": derive_answer(source.derive_answer, str(row["output"])) or ""},
                            desc=f"reading answers of {where}")
            columns.add("answer")
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        native = f" (or {', '.join(source.rename)})" if source.rename else ""
        raise ReasoningDataError(f"{where} lacks field(s) {missing} (it has {sorted(set(data.column_names))}); "
                                 f"expected {', '.join(SCHEMA)}{native}.")
    if len(data) == 0:
        raise ReasoningDataError(f"{where} has no examples.")
    if "input" not in columns:
        data = data.add_column("input", [""] * len(data))
    data = data.select_columns(list(SCHEMA))
    return data.map(lambda row: {k: "" if row[k] is None else str(row[k]) for k in SCHEMA}, desc=f"checking {where}")


def _where(source: Source, data_dir: str | None, generated: bool, out: str | None,
           given: dict[str, str] | None) -> str:
    if data_dir:
        kind = "generated: not checked" if generated else "a local copy: verified by counts"
        return f"--data-dir {data_dir} ({' or '.join(source.local)}; {kind})"
    if source.is_url:
        return f"{source.pin.repo} @ {(given or {}).get(source.pin.repo, source.pin.revision)}: {source.path}"
    return shown_revision(source.pin, out, given) + (f" ({source.config})" if source.config else "")


def source_rows(names: list[str], data_dir: str | None, generated: bool = False, out: str | None = None,
                given: dict[str, str] | None = None) -> list[tuple[str, str, str, Any]]:
    """Where each split of a plan's tasks comes from, for the dry run: the Hub id or GitHub file @ revision (or the
    local file), the split used, the expected rows."""
    rows = []
    for name in dict.fromkeys(names):
        task = get_task(name)
        for split, source in [("train", task.train), *((t.name, t.source) for t in task.tests)]:
            rows.append((f"{name}: {split}", _where(source, data_dir, generated, out, given), source.split,
                         None if generated else source.expected))
    return rows


def load_split(what: str, source: Source, data_dir: str | os.PathLike | None = None, *,
               sources: Sources | None = None, accept_subset: bool = False, generated: bool = False) -> Any:
    """One split in the schema: from `data_dir` (see `Source.local`) when given, else from the Hub / GitHub at the
    commit `sources` resolves (and records); checked against the source's rows unless the data is `generated`."""
    sources = sources if sources is not None else Sources(None)
    if data_dir is None:
        data, where = _from_hub(what, source, sources)
    else:
        path = local_file(data_dir, source)
        if path is None:
            looked = ", ".join(str(Path(data_dir) / name) for name in source.local)
            raise unavailable(what, source, f"--data-dir has none of {looked}")
        data, where = _read_json(path), str(path)
        if generated:
            sources.generated(what, f"generated by the smoke suite ({path})")
        else:
            sources.local(source.pin, what, path, "--data-dir")
    if not generated:
        verify(what, {source.split: data}, source.expected, label_key=None, accept_subset=accept_subset,
               where=where)
    return to_schema(data, source, where if data_dir is not None else f"{what} ({source.hub})")


def load_task(task: Task, data_dir: str | os.PathLike | None = None, tests: list[str] | None = None,
              train: bool = True, **checks: Any) -> dict[str, Any]:
    """{"train": Dataset or None, "tests": {test name: Dataset}} of `task` (all its test sets unless `tests`);
    `checks`: load_split's sources, accept_subset, generated."""
    chosen = [task.test(name) for name in (tests or [t.name for t in task.tests])]
    return {"train": load_split(f"{task.name} training data", task.train, data_dir, **checks) if train else None,
            "tests": {t.name: load_split(f"{t.title} test set", t.source, data_dir, **checks) for t in chosen}}
