"""`python -m benchmarks.report RESULTS_DIR`: a Markdown table shaped like the paper's Table 4 (vtab) or
Table 3 (GLUE): methods x datasets, average, parameters, in RESULTS_DIR/report.md, and the score against
trainable parameters in RESULTS_DIR/accuracy_vs_params.png. Each result's score is its "score" (GLUE: the
task's metric at the best epoch) or else its "accuracy" (vtab: top-1 test accuracy)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neat_text.glue import METRIC_NAMES, TASKS
from neat_text.reasoning import TASKS as REASONING_TASKS
from neat_vision.data import DATASETS

from .llm_recipes import DESCRIPTIONS as LLM_DESCRIPTIONS
from .llm_recipes import METHODS as LLM_METHODS
from .methods import DESCRIPTIONS, METHODS
from .results import load_results, score_of, write_json_atomic, write_text_atomic
from .text_methods import TEXT_DESCRIPTIONS, TEXT_METHODS

TABLE_NAME = "report.md"
PLOT_NAME = "accuracy_vs_params.png"
SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class Style:
    """How a suite's results read: heading, column titles (in order), what the score is, notes, methods."""

    heading: str
    titles: dict[str, str]
    score: str
    score_short: str
    notes: tuple[str, ...]
    methods: tuple[str, ...]
    descriptions: dict[str, str]


_PARAMS_NOTE = "Params: trainable parameters outside the classifier head (mean over datasets); the head always trains."
VTAB = Style(
    "Image classification results", {d: s.title for d, s in DATASETS.items()}, "Top-1 test accuracy (%)",
    "top-1 accuracy",
    (_PARAMS_NOTE, "PEFT cannot adapt only q and v of timm's fused attn.qkv, so PEFT baselines adapt attn.qkv "
                   "whole; NEAT adapts the q and v slices (preset qv) unless configured otherwise."),
    tuple(METHODS), DESCRIPTIONS)
GLUE = Style(
    "GLUE results", {t.name: t.title for t in TASKS.values()},
    "GLUE validation score (%) of the best epoch: "
    + ", ".join(f"{t.title} {METRIC_NAMES[t.metrics[0]]}" for t in TASKS.values() if t.metrics[0] != "accuracy")
    + ", accuracy otherwise (MNLI matched)", "GLUE score",
    (_PARAMS_NOTE, "Each run evaluates after every epoch; the table shows the best epoch's score (as the paper "
                   "does), the result files also hold the last epoch's (`last_score`) and every metric per epoch."),
    tuple(TEXT_METHODS), TEXT_DESCRIPTIONS)


LLM = Style(
    "Reasoning results", {**{t.name: t.title for task in REASONING_TASKS.values() for t in task.tests},
                          **{task.name: task.title for task in REASONING_TASKS.values()}},
    "Test accuracy (%) of the generated answers", "accuracy",
    ("Params: trainable parameters (adapters; a causal LM has no classifier head).",), LLM_METHODS, LLM_DESCRIPTIONS)


def style_for(results: list[dict[str, Any]]) -> Style:
    """The reasoning suite's when every result is one of its (suite "llm"), GLUE when every result is on a GLUE
    task, else vtab."""
    if results and all(r.get("suite") == "llm" for r in results):
        return LLM
    return GLUE if results and all(r["dataset"] in TASKS for r in results) else VTAB


def _ordered(keys: set[str], order: list[str]) -> list[str]:
    return [k for k in order if k in keys] + sorted(keys - set(order))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: score (%) mean / std / seed count per dataset, their average, and parameter counts."""
    style = style_for(results)
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    params: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        acc[r["method"], r["dataset"]].append(100 * score_of(r))
        for key in ("method_params", "trainable_params"):
            params[r["method"]][key].append(r[key])
    methods = _ordered({m for m, _ in acc}, list(style.methods))
    datasets = _ordered({d for _, d in acc}, list(style.titles))
    summary: dict[str, Any] = {"methods": methods, "datasets": datasets, "rows": {}}
    for m in methods:
        cells = {d: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
                 for d in datasets if (v := acc.get((m, d)))}
        summary["rows"][m] = {
            "cells": cells, "average": statistics.fmean(c["mean"] for c in cells.values()),
            "complete": len(cells) == len(datasets),
            **{k: statistics.fmean(v) for k, v in params[m].items()},
        }
    return summary


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K" if n >= 1e3 else f"{n:.0f}"


def _cell(c: dict[str, float]) -> str:
    return f"{c['mean']:.1f} ± {c['std']:.1f}" if c["n"] > 1 else f"{c['mean']:.1f}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The Markdown table (score %, mean ± std over seeds when several) with its notes."""
    s, style = summarise(results), style_for(results)
    titles = [style.titles.get(d, d) for d in s["datasets"]]
    lines = ["| Method | Params | " + " | ".join(titles) + " | Avg. |",
             "|---|---:|" + "---:|" * len(titles) + "---:|"]
    for m in s["methods"]:
        row = s["rows"][m]
        cells = [_cell(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
        avg = f"{row['average']:.1f}" + ("" if row["complete"] else "*")
        lines.append(f"| {m} | {_count(row['method_params'])} | " + " | ".join(cells) + f" | {avg} |")
    seeds = sorted({r["seed"] for r in results})
    notes = ["", f"{style.score}, seeds {', '.join(map(str, seeds))}" + (" (mean ± std)." if len(seeds) > 1 else "."),
             *style.notes]
    if not all(r["complete"] for r in s["rows"].values()):
        notes.append("*: average over the datasets this method has results for.")
    notes += ["", "Methods: " + "; ".join(f"{m}: {style.descriptions.get(m, m)}" for m in s["methods"]) + "."]
    return "\n".join(lines + notes) + "\n"


def plot(results: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Average score against trainable parameters (with the head; log x), one labelled point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, style = summarise(results), style_for(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m in s["methods"]:
        row = s["rows"][m]
        ax.scatter(row["trainable_params"], row["average"], s=60, zorder=3, marker="*" if m.startswith("neat") else "o")
        ax.annotate(m, (row["trainable_params"], row["average"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (incl. classifier head, log scale)")
    ax.set_ylabel(f"average {style.score_short} over {len(s['datasets'])} dataset(s) (%)")
    ax.set_title(f"{style.score_short[0].upper()}{style.score_short[1:]} vs trainable parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(out: str | os.PathLike) -> tuple[Path, Path]:
    """Write report.md, summary.json and the plot for the results under `out`."""
    results = load_results(out)
    if not results:
        raise FileNotFoundError(f"No results in {Path(out) / 'runs'}; run python -m benchmarks.vtab --out {out} first.")
    if style_for(results) is LLM:  # the reasoning suite: one table per task, published numbers, speed
        from .llm_report import write_llm_report

        return write_llm_report(out)
    out = Path(out)
    table = out / TABLE_NAME
    write_text_atomic(table, f"# {style_for(results).heading}\n\n" + markdown_table(results))
    write_json_atomic(out / SUMMARY_NAME, summarise(results))
    return table, plot(results, out / PLOT_NAME)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    p.add_argument("results_dir", help="the --out folder of benchmarks.vtab or benchmarks.glue")
    args = p.parse_args(argv)
    try:
        table, image = write_report(args.results_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table.read_text())
    print(f"wrote {table} and {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
