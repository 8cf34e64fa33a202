"""Learning-rate sweeps: one run per (method, dataset, seed, lr), the lr chosen on validation only.

`expand` turns each method's lr grid into runs (each writes its own result file, so a killed sweep resumes per
lr); `choose` picks, per (method, dataset), the lr whose runs have the best mean `selection_score` over seeds
(validation accuracy for images, the held-out slice's score for GLUE), never looking at the reported test
score; `selected` keeps the chosen runs for the tables. Plain Python: every suite and the demo use it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

SELECTION = "selection_score"


def lr_tag(lr: float) -> str:
    """The lr as it appears in file names: 0.005 -> "0.005", 3e-05 -> "3e-05"."""
    return f"{lr:g}"


@dataclass(frozen=True)
class Run:
    """One training run: a method (or a study's variant) on a dataset or task, a seed and, in a sweep, an lr."""

    method: str
    dataset: str
    seed: int
    lr: float | None = None

    @property
    def name(self) -> str:
        """The run's file name: `<method>_<dataset>_seed<seed>`, with `_lr<lr>` for a run of a sweep."""
        base = f"{self.method}_{self.dataset}_seed{self.seed}"
        return base if self.lr is None else f"{base}_lr{lr_tag(self.lr)}"


def expand(methods: Iterable[str], datasets: Iterable[str], seeds: Iterable[int],
           grid: Callable[[str, str], tuple[float, ...]]) -> list[Run]:
    """Every (method, dataset, seed, lr) run, lrs from `grid(method, dataset)` (duplicates dropped)."""
    return [Run(m, d, s, lr) for d in datasets for m in methods for s in seeds
            for lr in dict.fromkeys(grid(m, d))]


def _score(result: dict[str, Any]) -> float:
    value = result.get(SELECTION)
    return -math.inf if value is None or math.isnan(value) else float(value)


def choose(results: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float | None]:
    """{(method, dataset): the chosen lr}: the best mean selection score over the seeds run at that lr (ties: the
    smaller lr). Results without an "lr" (a single run) choose None."""
    scores: dict[tuple[str, str], dict[float | None, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        scores[r["method"], r["dataset"]][r.get("lr")].append(_score(r))
    return {cell: max(by_lr, key=lambda lr: (statistics.fmean(by_lr[lr]), -(lr or 0.0)))
            for cell, by_lr in scores.items()}


def selected(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results run at their cell's chosen lr (all seeds of it)."""
    chosen = choose(results)
    return [r for r in results if r.get("lr") == chosen[r["method"], r["dataset"]]]


def grids(results: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """{(method, dataset): the lrs with results}, sorted."""
    found: dict[tuple[str, str], set] = defaultdict(set)
    for r in results:
        if r.get("lr") is not None:
            found[r["method"], r["dataset"]].add(r["lr"])
    return {cell: sorted(lrs) for cell, lrs in found.items()}
