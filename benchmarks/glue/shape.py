"""How the GLUE suite's report reads (core.report.Shape): plain data, and the notes it reads from the results."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..core.catalog import descriptions
from ..core.report import Shape, titles
from .recipes import GLUE_TASKS

FOURIER_ROW = ("fourier_scaling", "head_lr", "lr", "epochs")
# The recipe values the report names under its table, per method and task (None: every task): where a paper's
# table and its scripts disagree (LoRA's alpha; FourierFT's MRPC scale and QNLI spectral lr) or a task has no
# published row (FourierFT on MNLI and QQP, which take QNLI's).
NAMED: dict[str, dict[str | None, tuple[str, ...]]] = {
    "lora": {None: ("lora_alpha",)}, "dora": {None: ("lora_alpha",)},
    "fourierft": {"mrpc": ("fourier_scaling",), "qnli": ("lr",), "mnli": FOURIER_ROW, "qqp": FOURIER_ROW},
}


def trained(result: dict[str, Any], name: str) -> tuple[Any, str]:
    """(value, source) of `name` as the run trained it: a method option as the run set it (the recipe's source when
    it kept the recipe's value), a loop value from the recipe the run recorded (command-line values cite "command
    line"; a swept value names its grid)."""
    config = result.get("config") or {}
    recipe = config.get("recipe") or {}
    sources, options = recipe.get("sources") or {}, recipe.get("options") or {}
    if name == recipe.get("sweep") and recipe.get("lrs"):
        return "swept over " + ", ".join(f"{lr:g}" for lr in recipe["lrs"]), sources.get("lrs", "")
    if name not in options:
        return recipe.get(name), sources.get(name, "")
    value = (config.get("method_options") or {}).get(name, options[name])
    if value == options[name]:
        return value, sources.get(name, "")
    matched = config.get("matched_to")
    return value, (f"--match-params {matched} (alpha / r kept)" if matched and name == "lora_alpha"
                   else "set for this run (command line)")


def recipe_notes(results: list[dict[str, Any]]) -> list[str]:
    """One note per method, values and source among NAMED: the values the runs trained with, on which tasks, and
    where each comes from."""
    by_task: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        named = NAMED.get(r["method"], {})
        for name in named.get(r["dataset"], named.get(None, ())):
            value, source = trained(r, name)
            shown = f"{name} {value:g}" if isinstance(value, (int, float)) else f"{name} {value}"
            if shown not in by_task[r["method"], r["dataset"]][source]:
                by_task[r["method"], r["dataset"]][source].append(shown)
    tasks: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (method, task), sources in by_task.items():
        for source, values in sources.items():
            tasks[method, ", ".join(values), source].append(task)
    named = titles(results)
    order = {t: i for i, t in enumerate(GLUE_TASKS)}
    return [f"{method} on {', '.join(named[t] for t in sorted(found, key=lambda t: order.get(t, len(order))))}: "
            f"{values} — {source}." for (method, values, source), found in tasks.items()]


SHAPE = Shape("glue", "GLUE results", GLUE_TASKS, "GLUE validation score (%)", "GLUE score", "selection score",
              descriptions("text"), metric_in_score=True, notes=(
                  "GLUE has no public test labels: the reported score is on the validation set (MNLI matched). With "
                  "one lr (a published recipe) it is the best epoch's, as the papers report; a sweep holds out a "
                  "seeded slice of train, chooses lr and epoch on it, and reports validation at that choice.",),
              result_notes=recipe_notes)
