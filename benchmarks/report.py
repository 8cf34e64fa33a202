"""`python -m benchmarks.report RESULTS_DIR`: a Markdown table shaped like the paper's Table 4 (methods x
datasets, average, parameters) in RESULTS_DIR/report.md and accuracy against trainable parameters in
RESULTS_DIR/accuracy_vs_params.png."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from neat_vision.data import DATASETS

from .methods import DESCRIPTIONS, METHODS
from .results import load_results, write_json_atomic, write_text_atomic

TABLE_NAME = "report.md"
PLOT_NAME = "accuracy_vs_params.png"
SUMMARY_NAME = "summary.json"


def _ordered(keys: set[str], order: list[str]) -> list[str]:
    return [k for k in order if k in keys] + sorted(keys - set(order))


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: accuracy (%) mean / std / seed count per dataset, their average, and parameter counts."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    params: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        acc[r["method"], r["dataset"]].append(100 * r["accuracy"])
        for key in ("method_params", "trainable_params"):
            params[r["method"]][key].append(r[key])
    methods = _ordered({m for m, _ in acc}, list(METHODS))
    datasets = _ordered({d for _, d in acc}, list(DATASETS))
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
    """The Markdown table (accuracy %, mean ± std over seeds when several) with its notes."""
    s = summarise(results)
    titles = [DATASETS[d].title if d in DATASETS else d for d in s["datasets"]]
    lines = ["| Method | Params | " + " | ".join(titles) + " | Avg. |",
             "|---|---:|" + "---:|" * len(titles) + "---:|"]
    for m in s["methods"]:
        row = s["rows"][m]
        cells = [_cell(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
        avg = f"{row['average']:.1f}" + ("" if row["complete"] else "*")
        lines.append(f"| {m} | {_count(row['method_params'])} | " + " | ".join(cells) + f" | {avg} |")
    seeds = sorted({r["seed"] for r in results})
    notes = ["", f"Top-1 test accuracy (%), seeds {', '.join(map(str, seeds))}"
             + (" (mean ± std)." if len(seeds) > 1 else "."),
             "Params: trainable parameters outside the classifier head (mean over datasets); the head always trains.",
             "PEFT cannot adapt only q and v of timm's fused attn.qkv, so PEFT baselines adapt attn.qkv whole; "
             "NEAT adapts the q and v slices (preset qv) unless configured otherwise."]
    if not all(r["complete"] for r in s["rows"].values()):
        notes.append("*: average over the datasets this method has results for.")
    notes += ["", "Methods: " + "; ".join(f"{m}: {DESCRIPTIONS.get(m, m)}" for m in s["methods"]) + "."]
    return "\n".join(lines + notes) + "\n"


def plot(results: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Average accuracy against trainable parameters (with the head; log x), one labelled point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarise(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m in s["methods"]:
        row = s["rows"][m]
        ax.scatter(row["trainable_params"], row["average"], s=60, zorder=3, marker="*" if m == "neat" else "o")
        ax.annotate(m, (row["trainable_params"], row["average"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (incl. classifier head, log scale)")
    ax.set_ylabel(f"average top-1 accuracy over {len(s['datasets'])} dataset(s) (%)")
    ax.set_title("Accuracy vs trainable parameters")
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
    out = Path(out)
    table = out / TABLE_NAME
    write_text_atomic(table, "# Image classification results\n\n" + markdown_table(results))
    write_json_atomic(out / SUMMARY_NAME, summarise(results))
    return table, plot(results, out / PLOT_NAME)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    p.add_argument("results_dir", help="the --out folder of benchmarks.vtab")
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
