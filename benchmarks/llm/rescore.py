"""Scoring generated answers, in a run and again later without a model (`python -m benchmarks.llm --rescore FILE`).

Every record carries the headline reading (`prediction`, `correct`: as the source the published rows were scored
with reads it, benchmarks/llm/answers.py) and, labelled apart, the lenient reading (`prediction_lenient`,
`correct_lenient`: a diagnostic, never the headline). Predictions are strings with every digit kept.

`--rescore` reads JSON lines with `test` (the suite's test-set name: gsm8k, MATH, boolq, ...), `generation` and
`answer` (the test file's answer: the number for GSM8K, the reference answer for MATH, the label for commonsense),
or a run's own predictions file (OUTPUT/predictions/<run>.json: {test: [records]}); it prints every row back as
one JSON line with the readings added, and the accuracy per test set on stderr.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

from . import answers
from .tasks import TASKS

KINDS = {t.name: t.answer_kind for task in TASKS.values() for t in task.tests}
LENIENT_KINDS = ("number", "boxed", "peft_number")   # the kinds whose lenient reading has a fallback the lineage lacks


class RescoreError(ValueError):
    """A rescore input that cannot be read: which line or field, and what is expected."""


def scored(test: str, generation: str, answer: Any) -> dict[str, Any]:
    """Both readings of one generation for test set `test`."""
    if test not in KINDS:
        raise RescoreError(f"Unknown test set {test!r}; the suite's test sets are {', '.join(KINDS)}.")
    kind = KINDS[test]
    correct = answers.is_correct(kind, generation, answer)
    return {"prediction": answers.extract(kind, generation), "correct": correct,
            "prediction_lenient": answers.extract_lenient(kind, generation),
            "correct_lenient": correct or answers.fallback_correct(kind, generation, answer)}


def accuracy(records: list[dict[str, Any]], lenient: bool = True) -> dict[str, float]:
    """{accuracy, correct, total} of scored records, and accuracy_lenient when `lenient`."""
    correct = sum(r["correct"] for r in records)
    found = {"accuracy": correct / len(records), "correct": correct, "total": len(records)}
    if lenient:
        found["accuracy_lenient"] = sum(r["correct_lenient"] for r in records) / len(records)
    return found


def rows_of(path: Path) -> list[dict[str, Any]]:
    """The rows to score: JSON lines, or a run's predictions file ({test: [records]})."""
    try:
        text = path.read_text()
    except OSError as err:
        raise RescoreError(f"--rescore {path}: cannot read it ({err.strerror}).") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and all(isinstance(v, list) for v in whole.values()):   # a run's predictions file
        return [{"test": test, **record} for test, records in whole.items() for record in records]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RescoreError(f"--rescore {path}, line {number}: not JSON ({err.msg}).") from None
        missing = [k for k in ("test", "generation", "answer") if not isinstance(row, dict) or k not in row]
        if missing:
            raise RescoreError(f"--rescore {path}, line {number}: missing field(s) {', '.join(missing)}; each line "
                               "needs test, generation and answer.")
        rows.append(row)
    return rows


def rescore(path: Path, out: TextIO | None = None, err: TextIO | None = None) -> dict[str, dict[str, float]]:
    """Print every row of `path` with both readings as a JSON line on `out` (stdout), the accuracy per test set on
    `err` (stderr); returns {test: {accuracy, accuracy_lenient, correct, total}}."""
    out, err = out or sys.stdout, err or sys.stderr
    rows = [{**row, **scored(row["test"], row["generation"], row["answer"])} for row in rows_of(path)]
    totals: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        totals[row["test"]].append(row)
    summary = {test: accuracy(rs) for test, rs in totals.items()}
    for test, s in summary.items():
        err.write(f"{test}: accuracy {s['accuracy']:.4f} ({s['correct']}/{s['total']}; lenient reading, not the "
                  f"headline: {s['accuracy_lenient']:.4f})\n")
    return summary
