"""Published numbers as data, one type for every suite: a row a paper (or a repository's result file) reports for
one of our methods on one model, each with its source, and the rule that puts it beside our row.

A row's scores are as the source prints them, in percent; its "average" is the source's own (never recomputed from
rounded cells). `note` says when a row is a re-run by another paper than the method's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Published:
    """One published row: its label as the source names it, which of our methods it is, on which model, at what
    size, its scores (dataset or test set -> %, "average" for the source's average), and where it comes from."""

    label: str
    method: str
    model: str
    scores: dict[str, float]
    source: str
    params: int | None = None     # adapter parameters as published (approximate where the source rounds)
    options: dict = field(default_factory=dict)   # method options the row needs (e.g. NEAT's depth)
    note: str = ""                # e.g. "re-run by MiLoRA (arXiv 2406.09044), not the method's own paper"


def same_model(ours: str, theirs: str) -> bool:
    """Whether our model id is the row's: equal, or the same timm architecture (the tag after '.' aside)."""
    return ours == theirs or ours.split(".")[0] == theirs


def rows_for(rows: tuple[Published, ...], method: str, model: str, options: dict, method_params: float
             ) -> list[Published]:
    """The published rows that correspond to our `method` on `model` with these method options: the same method and
    model, the row's required options, and, where the source has several sizes, the one closest to ours (ratio of
    parameter counts)."""
    found = [r for r in rows if r.method == method and same_model(model, r.model)
             and all(options.get(k) == v for k, v in r.options.items())]
    sized = [r for r in found if r.params]
    if len(sized) > 1:
        closest = min(sized, key=lambda r: max(r.params, method_params) / max(1.0, min(r.params, method_params)))
        found = [r for r in found if not r.params or r is closest]
    return found
