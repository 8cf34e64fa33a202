"""`python -m benchmarks.report RESULTS_DIR`: the results of benchmarks.vtab, .glue or .llm as tables and a plot.

RESULTS_DIR/report.md holds (1) a table shaped like the paper's Table 4 (vtab) or Table 3 (GLUE): methods x
datasets, average, parameters; each cell is the score at the learning rate chosen on validation (mean ± std over
seeds); (2) the selection table: per method and dataset the parameters, the lr grid, the chosen lr, the
validation score it was chosen by and the reported score; (3) where published numbers exist for the same method
and backbone (benchmarks/published.py), those rows beside ours with the differences. RESULTS_DIR/summary.json
holds the same numbers; RESULTS_DIR/accuracy_vs_params.png plots the average score against adapter parameters.
Params everywhere: trainable parameters outside the classifier head (which every method trains).
A result's reported score is its "score" (GLUE) or else its "accuracy" (vtab: top-1 test accuracy).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import DESCRIPTIONS, TEXT_DESCRIPTIONS
from .llm_recipes import DESCRIPTIONS as LLM_DESCRIPTIONS
from .llm_recipes import TASK_TESTS as LLM_TESTS
from .published import ORDER as PUBLISHED_ORDER
from .published import rows_for
from .recipes import GLUE_TASKS, IMAGE_DATASETS
from .results import load_results, score_of, write_json_atomic, write_text_atomic
from .sweep import SELECTION, choose, grids, selected

TABLE_NAME = "report.md"
PLOT_NAME = "accuracy_vs_params.png"
SUMMARY_NAME = "summary.json"
METRIC_NAMES = {"matthews": "Matthews corr.", "accuracy": "accuracy", "f1": "F1", "pearson": "Pearson corr.",
                "spearman": "Spearman corr."}
PARAMS_NOTE = ("Params: trainable parameters outside the classifier head (which every method trains), in the "
               "tables and on the plot's x axis.")


@dataclass(frozen=True)
class Style:
    """How a suite's results read: heading, dataset order, what the scores are, notes, methods."""

    heading: str
    order: tuple[str, ...]
    score: str
    score_short: str
    selection: str | None   # what chooses the lr (None: the suite has no lr sweep)
    notes: tuple[str, ...]
    descriptions: dict[str, str]
    params_note: str = PARAMS_NOTE


VTAB = Style("Image classification results", IMAGE_DATASETS, "Top-1 test accuracy (%)", "top-1 accuracy",
             "validation accuracy", (), DESCRIPTIONS)
GLUE = Style("GLUE results", GLUE_TASKS, "GLUE validation score (%)", "GLUE score", "selection score",
             ("GLUE has no public test labels: the reported score is on the validation set (MNLI matched). With "
              "one lr (a published recipe) it is the best epoch's, as the papers report; a sweep holds out a "
              "seeded slice of train, chooses lr and epoch on it, and reports validation at that choice.",),
             TEXT_DESCRIPTIONS)


LLM = Style("Reasoning results", tuple(t for tests in LLM_TESTS.values() for t in tests),
            "Test accuracy (%) of the generated answers", "accuracy", None, (), LLM_DESCRIPTIONS,
            "Params: trainable (adapter) parameters; a causal LM has no classifier head. Each method runs at its "
            "recipe in benchmarks/llm_recipes.py (published values, each cited; the smoke suite shrinks them: "
            "config.recipe of each result says which ran).")


def style_for(results: list[dict[str, Any]]) -> Style:
    """The reasoning suite's when every result is one of its (suite "llm"), GLUE when every result is on a GLUE
    task, else vtab."""
    if results and all(r.get("suite") == "llm" for r in results):
        return LLM
    return GLUE if results and all(r["dataset"] in GLUE_TASKS for r in results) else VTAB


def titles(results: list[dict[str, Any]]) -> dict[str, str]:
    """{dataset: title}: the title a result recorded (config.data.title), else the dataset's key."""
    return {r["dataset"]: ((r.get("config") or {}).get("data") or {}).get("title") or r["dataset"] for r in results}


def _ordered(keys: set[str], order: tuple[str, ...]) -> list[str]:
    return [k for k in order if k in keys] + sorted(keys - set(order))


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarise(results: list[dict[str, Any]], order: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per method: per dataset the chosen lr, its grid, the reported score (%) and the selection score (mean /
    std / seed count over the chosen lr's seeds), their average, and parameter counts. Methods in `order` first,
    then the suite's, then the rest by name."""
    style, chosen, swept = style_for(results), choose(results), grids(results)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in selected(results):
        cells[r["method"], r["dataset"]].append(r)
    methods = [m for m in (*order, *style.descriptions) if any(k[0] == m for k in cells)]
    methods = list(dict.fromkeys(methods))
    methods += sorted({m for m, _ in cells} - set(methods))
    datasets = _ordered({d for _, d in cells}, style.order)
    summary: dict[str, Any] = {"methods": methods, "datasets": datasets, "rows": {}}
    for m in methods:
        row = {}
        for d in datasets:
            runs = cells.get((m, d))
            if not runs:
                continue
            picked = [r.get(SELECTION) for r in runs if r.get(SELECTION) is not None]
            row[d] = {**_stats([100 * score_of(r) for r in runs]), "lr": chosen[m, d], "grid": swept.get((m, d), []),
                      "selection": statistics.fmean(100 * v for v in picked) if picked else None,
                      "method_params": runs[0]["method_params"], "head_params": runs[0]["head_params"]}
        found = [r for d in datasets for r in cells.get((m, d), [])]
        summary["rows"][m] = {
            "cells": row, "average": statistics.fmean(c["mean"] for c in row.values()),
            "complete": len(row) == len(datasets),
            "method_params": statistics.fmean(c["method_params"] for c in row.values()),
            "trainable_params": statistics.fmean(r["trainable_params"] for r in found),
            "model": (found[0].get("config") or {}).get("model", ""),
            "options": (found[0].get("config") or {}).get("method_options", {}),
        }
    return summary


def count_text(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K" if n >= 1e3 else f"{n:.0f}"


def cell_text(c: dict[str, float]) -> str:
    return f"{c['mean']:.1f} ± {c['std']:.1f}" if c["n"] > 1 else f"{c['mean']:.1f}"


def _score_text(results: list[dict[str, Any]], style: Style) -> str:
    """What the scores are; for GLUE with each task's metric where it is not accuracy."""
    if style is not GLUE:
        return style.score
    named, metrics = titles(results), {r["dataset"]: r.get("metric", "accuracy") for r in results}
    special = [f"{named[d]} {METRIC_NAMES.get(m, m)}" for d, m in metrics.items() if m != "accuracy"]
    return style.score + (": " + ", ".join(special) + ", accuracy otherwise" if special else "")


def selection_note(style: Style, unit: str) -> str:
    """How a table's lr was chosen (GLUE's epochs: the style's notes)."""
    return (f"Each {unit}: the lr with the best mean {style.selection or 'validation score'} over seeds (the "
            "selection table); the reported score never chooses the lr.")


def _notes(results: list[dict[str, Any]], style: Style) -> list[str]:
    configs = [r.get("config") or {} for r in results]
    notes = [style.params_note]
    if style.selection:
        notes.append(selection_note(style, "cell"))
    targets = sorted({c["peft_target"] for c in configs if c.get("peft_target")})
    if targets == ["qv"]:
        notes.append("PEFT baselines adapt q and v only (timm's fused attn.qkv split into q, k, v linears), as NEAT.")
    elif targets:
        notes.append("PEFT baselines adapt " + " / ".join(targets) + " (see each result's config.peft_target); "
                     "fused = attn.qkv whole.")
    matched = sorted({c["matched_to"] for c in configs if c.get("matched_to")})
    if matched:
        notes.append(f"Adapter sizes matched to {', '.join(matched)}'s trainable parameters (--match-params).")
    return notes + list(style.notes)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The paper-shaped table (score %, mean ± std over seeds when several) with its notes."""
    s, style, named = summarise(results), style_for(results), titles(results)
    heads = [named.get(d, d) for d in s["datasets"]]
    lines = ["| Method | Params | " + " | ".join(heads) + " | Avg. |", "|---|---:|" + "---:|" * len(heads) + "---:|"]
    for m in s["methods"]:
        row = s["rows"][m]
        cells = [cell_text(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
        avg = f"{row['average']:.1f}" + ("" if row["complete"] else "*")
        lines.append(f"| {m} | {count_text(row['method_params'])} | " + " | ".join(cells) + f" | {avg} |")
    seeds = sorted({r["seed"] for r in results})
    notes = ["", f"{_score_text(results, style)}, seeds {', '.join(map(str, seeds))}"
             + (" (mean ± std)." if len(seeds) > 1 else "."),
             *_notes(results, style)]
    if not all(r["complete"] for r in s["rows"].values()):
        notes.append("*: average over the datasets this method has results for.")
    notes += ["", "Methods: " + "; ".join(f"{m}: {style.descriptions.get(m, m)}" for m in s["methods"]) + "."]
    return "\n".join(lines + notes) + "\n"


def selection_table(results: list[dict[str, Any]], order: tuple[str, ...] = ()) -> str:
    """Per method and dataset: params, lr grid, chosen lr, its validation (selection) score and reported score."""
    s, style, named = summarise(results, order), style_for(results), titles(results)
    lines = [f"| Method | Dataset | Params | lr grid | Chosen lr | {style.selection[0].upper()}{style.selection[1:]} "
             f"| {style.score_short[0].upper()}{style.score_short[1:]} |", "|---|---|---:|---|---:|---:|---:|"]
    for m in s["methods"]:
        for d, c in s["rows"][m]["cells"].items():
            grid = ", ".join(f"{lr:g}" for lr in c["grid"]) or "—"
            chosen = f"{c['lr']:g}" if c["lr"] is not None else "—"
            picked = f"{c['selection']:.1f}" if c["selection"] is not None else "—"
            lines.append(f"| {m} | {named.get(d, d)} | {c['method_params']:,} | {grid} | {chosen} | {picked} | "
                         f"{cell_text(c)} |")
    return "\n".join(lines) + "\n"


def published_table(results: list[dict[str, Any]]) -> str:
    """Our rows beside the published ones for the same method and backbone, with Δ = ours − published (points);
    empty when no published row applies."""
    s, named = summarise(results), titles(results)
    lines, sources = [], set()
    for m in s["methods"]:
        row = s["rows"][m]
        for pub in rows_for(m, row["model"], row["options"], row["method_params"]):
            sources.add(pub.source)
            ours = [cell_text(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
            theirs = [f"{pub.scores[d]:.2f}" if d in pub.scores else "—" for d in s["datasets"]]
            delta = [f"{row['cells'][d]['mean'] - pub.scores[d]:+.1f}" if d in row["cells"] and d in pub.scores
                     else "—" for d in s["datasets"]]
            same_average = row["complete"] and "average" in pub.scores and set(s["datasets"]) == set(PUBLISHED_ORDER)
            avg_delta = f"{row['average'] - pub.scores['average']:+.1f}" if same_average else "—"
            params = count_text(pub.params) if pub.params is not None else "—"
            pub_avg = f"{pub.scores['average']:.2f}" if "average" in pub.scores else "—"
            lines += [f"| {m} (ours) | {count_text(row['method_params'])} | " + " | ".join(ours)
                      + f" | {row['average']:.1f}{'' if row['complete'] else '*'} |",
                      f"| {pub.label} (published) | {params} | " + " | ".join(theirs) + f" | {pub_avg} |",
                      "| Δ | | " + " | ".join(delta) + f" | {avg_delta} |"]
    if not lines:
        return ""
    heads = [named.get(d, d) for d in s["datasets"]]
    header = ["| Row | Params | " + " | ".join(heads) + " | Avg. |", "|---|---:|" + "---:|" * len(heads) + "---:|"]
    notes = ["", "Published: " + "; ".join(sorted(sources)) + ". Δ = ours − published, in points; the published "
             "average is over all eight datasets, so its Δ needs all eight."]
    return "\n".join(header + lines + notes) + "\n"


def markdown_report(results: list[dict[str, Any]]) -> str:
    """Every section of report.md (without its heading)."""
    parts = [markdown_table(results), "## Learning rates chosen on validation\n\n" + selection_table(results)]
    published = published_table(results)
    if published:
        parts.append("## Published numbers beside ours\n\n" + published)
    return "\n".join(parts)


def plot(results: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Average score against adapter parameters (without the head; symlog x, so 0 has a place), one labelled
    point per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, style = summarise(results), style_for(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m in s["methods"]:
        row = s["rows"][m]
        ax.scatter(row["method_params"], row["average"], s=60, zorder=3, marker="*" if m.startswith("neat") else "o")
        ax.annotate(m, (row["method_params"], row["average"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("trainable parameters without the classifier head (symlog scale)")
    ax.set_ylabel(f"average {style.score_short} over {len(s['datasets'])} dataset(s) (%)")
    ax.set_title(f"{style.score_short[0].upper()}{style.score_short[1:]} vs adapter parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(out: str | os.PathLike) -> tuple[Path, Path, str]:
    """Write report.md, summary.json and the plot for the results under `out`; returns their paths and the
    report's text."""
    results = load_results(out)
    if not results:
        raise FileNotFoundError(f"No results in {Path(out) / 'runs'}; run python -m benchmarks.vtab --out {out} first.")
    if style_for(results) is LLM:  # the reasoning suite: one table per task, published numbers, speed
        from .llm_report import write_llm_report

        return write_llm_report(out)
    out = Path(out)
    text = markdown_report(results)
    table = write_text_atomic(out / TABLE_NAME, f"# {style_for(results).heading}\n\n" + text)
    write_json_atomic(out / SUMMARY_NAME, summarise(results))
    return table, plot(results, out / PLOT_NAME), text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results_dir", help="the --out folder of benchmarks.vtab, benchmarks.glue or benchmarks.llm")
    args = p.parse_args(argv)
    try:
        table, image, text = write_report(args.results_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {table} and {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
