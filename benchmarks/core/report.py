"""The one report module: tables and a plot from result files, shaped per suite by data (`Shape`).

report.md holds (1) a table shaped like the paper's (methods x datasets or test sets, average, parameters; each cell
the score at the lr chosen on validation, mean ± std over seeds), (2) where the suite sweeps lrs, the selection
table (per method and dataset: parameters, lr grid, chosen lr, the validation score that chose it, the reported
score), (3) published rows for the same method and model beside ours, with the differences, and (4) where the shape
asks for it, training speed and memory per method. summary.json holds the same numbers; accuracy_vs_params.png plots
the average score against adapter parameters. Params everywhere: trainable parameters outside the classifier head.
A suite whose results are one per task with a score per test set (the reasoning suite) sets `per_test`: its tables
have one column per test set and one section per (task, model).
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .published import Published, rows_for
from .results import load_results, write_json_atomic, write_text_atomic
from .sweep import SELECTION, choose, grids, selected

TABLE_NAME = "report.md"
PLOT_NAME = "accuracy_vs_params.png"
SUMMARY_NAME = "summary.json"
METRIC_NAMES = {"matthews": "Matthews corr.", "accuracy": "accuracy", "f1": "F1", "pearson": "Pearson corr.",
                "spearman": "Spearman corr."}
PARAMS_NOTE = ("Params: trainable parameters outside the classifier head (which every method trains), in the "
               "tables and on the plot's x axis.")


@dataclass(frozen=True)
class Shape:
    """How a suite's results read: heading, column order, what the scores are, how the lr was chosen (None: no
    sweep), notes, method descriptions, published rows, and the sections of its report.

    per_test: results carry one score per test set (`scores`) and one result per task: columns are test sets,
              one section per (task, model), headed by `titles(task)`.
    published_average: the columns a published row's average covers (its Δ needs exactly these).
    speed: a training speed and memory section per table.
    task_sections: per_test only: {task: function(that task's results) -> a Markdown section} appended to the
              task's sections (the reasoning suite's PEFT leaderboard).
    result_notes: function(results) -> notes read from the results, after the shape's own (GLUE: the recipe values
              where a paper and its scripts disagree, as each run trained them)."""

    suite: str
    heading: str
    order: tuple[str, ...]
    score: str
    score_short: str
    selection: str | None
    descriptions: dict[str, str]
    notes: tuple[str, ...] = ()
    params_note: str = PARAMS_NOTE
    published: tuple[Published, ...] = ()
    published_average: tuple[str, ...] = ()
    per_test: bool = False
    speed: bool = False
    titles: dict[str, str] = field(default_factory=dict)
    metric_in_score: bool = False   # name each dataset's metric where it is not accuracy (GLUE)
    task_sections: Mapping[str, Callable[[list[dict[str, Any]]], str]] = field(default_factory=dict)
    result_notes: Callable[[list[dict[str, Any]]], list[str]] | None = None


def titles(results: list[dict[str, Any]]) -> dict[str, str]:
    """{dataset: title}: the title a result recorded (config.data.title), else the dataset's key."""
    return {r["dataset"]: ((r.get("config") or {}).get("data") or {}).get("title") or r["dataset"] for r in results}


def shown_titles(results: list[dict[str, Any]], shape: Shape) -> dict[str, str]:
    """{dataset: the title tables show}: the shape's own titles over the ones the results recorded."""
    return {**titles(results), **shape.titles}


def _ordered(keys: set[str], order: tuple[str, ...]) -> list[str]:
    return [k for k in order if k in keys] + sorted(keys - set(order))


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarise(results: list[dict[str, Any]], shape: Shape, order: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per method: per dataset the chosen lr, its grid, the reported score (%) and the selection score (mean / std /
    seed count over the chosen lr's seeds), their average, and parameter counts. Methods in `order` first, then the
    shape's, then the rest by name."""
    chosen, swept = choose(results), grids(results)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in selected(results):
        cells[r["method"], r["dataset"]].append(r)
    methods = list(dict.fromkeys(m for m in (*order, *shape.descriptions) if any(k[0] == m for k in cells)))
    methods += sorted({m for m, _ in cells} - set(methods))
    datasets = _ordered({d for _, d in cells}, shape.order)
    summary: dict[str, Any] = {"methods": methods, "datasets": datasets, "rows": {}}
    for m in methods:
        row = {}
        for d in datasets:
            runs = cells.get((m, d))
            if not runs:
                continue
            picked = [r.get(SELECTION) for r in runs if r.get(SELECTION) is not None]
            row[d] = {**_stats([100 * r["score"] for r in runs]), "lr": chosen[m, d], "grid": swept.get((m, d), []),
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


def _score_text(results: list[dict[str, Any]], shape: Shape) -> str:
    """What the scores are; with each dataset's metric where it is not accuracy when the shape asks (GLUE)."""
    if not shape.metric_in_score:
        return shape.score
    named, metrics = titles(results), {r["dataset"]: r.get("metric", "accuracy") for r in results}
    special = [f"{named[d]} {METRIC_NAMES.get(m, m)}" for d, m in metrics.items() if m != "accuracy"]
    return shape.score + (": " + ", ".join(special) + ", accuracy otherwise" if special else "")


def selection_note(shape: Shape, unit: str) -> str:
    """How a table's lr was chosen (GLUE's epochs: the shape's notes)."""
    return (f"Each {unit}: the lr with the best mean {shape.selection or 'validation score'} over seeds (the "
            "selection table); the reported score never chooses the lr.")


def _notes(results: list[dict[str, Any]], shape: Shape) -> list[str]:
    configs = [r.get("config") or {} for r in results]
    notes = [shape.params_note]
    if shape.selection:
        notes.append(selection_note(shape, "cell"))
    targets = sorted({c["peft_target"] for c in configs if c.get("peft_target")})
    if targets == ["qv"]:
        notes.append("PEFT baselines adapt q and v only (timm's fused attn.qkv split into q, k, v linears), as NEAT.")
    elif targets:
        notes.append("PEFT baselines adapt " + " / ".join(targets) + " (see each result's config.peft_target); "
                     "fused = attn.qkv whole.")
    matched = sorted({c["matched_to"] for c in configs if c.get("matched_to")})
    if matched:
        notes.append(f"Adapter sizes matched to {', '.join(matched)}'s trainable parameters (--match-params).")
    return notes + list(shape.notes) + (shape.result_notes(results) if shape.result_notes else [])


def markdown_table(results: list[dict[str, Any]], shape: Shape) -> str:
    """The paper-shaped table (score %, mean ± std over seeds when several) with its notes."""
    s, named = summarise(results, shape), shown_titles(results, shape)
    heads = [named.get(d, d) for d in s["datasets"]]
    lines = ["| Method | Params | " + " | ".join(heads) + " | Avg. |", "|---|---:|" + "---:|" * len(heads) + "---:|"]
    for m in s["methods"]:
        row = s["rows"][m]
        cells = [cell_text(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
        avg = f"{row['average']:.1f}" + ("" if row["complete"] else "*")
        lines.append(f"| {m} | {count_text(row['method_params'])} | " + " | ".join(cells) + f" | {avg} |")
    seeds = sorted({r["seed"] for r in results})
    notes = ["", f"{_score_text(results, shape)}, seeds {', '.join(map(str, seeds))}"
             + (" (mean ± std)." if len(seeds) > 1 else "."), *_notes(results, shape)]
    if not all(r["complete"] for r in s["rows"].values()):
        notes.append("*: average over the datasets this method has results for.")
    notes += ["", "Methods: " + "; ".join(f"{m}: {shape.descriptions.get(m, m)}" for m in s["methods"]) + "."]
    return "\n".join(lines + notes) + "\n"


def selection_table(results: list[dict[str, Any]], shape: Shape, order: tuple[str, ...] = ()) -> str:
    """Per method and dataset: params, lr grid, chosen lr, its validation (selection) score and reported score."""
    s, named = summarise(results, shape, order), shown_titles(results, shape)
    head = shape.selection or "validation score"
    lines = [f"| Method | Dataset | Params | lr grid | Chosen lr | {head[0].upper()}{head[1:]} "
             f"| {shape.score_short[0].upper()}{shape.score_short[1:]} |", "|---|---|---:|---|---:|---:|---:|"]
    for m in s["methods"]:
        for d, c in s["rows"][m]["cells"].items():
            grid = ", ".join(f"{lr:g}" for lr in c["grid"]) or "—"
            chosen = f"{c['lr']:g}" if c["lr"] is not None else "—"
            picked = f"{c['selection']:.1f}" if c["selection"] is not None else "—"
            lines.append(f"| {m} | {named.get(d, d)} | {c['method_params']:,} | {grid} | {chosen} | {picked} | "
                         f"{cell_text(c)} |")
    return "\n".join(lines) + "\n"


def published_table(results: list[dict[str, Any]], shape: Shape) -> str:
    """Our rows beside the published ones for the same method and model, with Δ = ours − published (points);
    empty when no published row applies. Published averages are the sources' own."""
    s, named = summarise(results, shape), shown_titles(results, shape)
    lines, sources, notes = [], set(), []
    for m in s["methods"]:
        row = s["rows"][m]
        for pub in rows_for(shape.published, m, row["model"], row["options"], row["method_params"]):
            sources.add(pub.source)
            if pub.note:
                notes.append(f"{pub.label}: {pub.note}")
            ours = [cell_text(row["cells"][d]) if d in row["cells"] else "—" for d in s["datasets"]]
            theirs = [f"{pub.scores[d]}" if d in pub.scores else "—" for d in s["datasets"]]   # as printed
            delta = [f"{row['cells'][d]['mean'] - pub.scores[d]:+.1f}" if d in row["cells"] and d in pub.scores
                     else "—" for d in s["datasets"]]
            same_average = (row["complete"] and "average" in pub.scores
                            and set(s["datasets"]) == set(shape.published_average or s["datasets"]))
            avg_delta = f"{row['average'] - pub.scores['average']:+.1f}" if same_average else "—"
            params = count_text(pub.params) if pub.params is not None else "—"
            pub_avg = f"{pub.scores['average']}" if "average" in pub.scores else "—"
            lines += [f"| {m} (ours) | {count_text(row['method_params'])} | " + " | ".join(ours)
                      + f" | {row['average']:.1f}{'' if row['complete'] else '*'} |",
                      f"| {pub.label} (published) | {params} | " + " | ".join(theirs) + f" | {pub_avg} |",
                      "| Δ | | " + " | ".join(delta) + f" | {avg_delta} |"]
    if not lines:
        return ""
    heads = [named.get(d, d) for d in s["datasets"]]
    header = ["| Row | Params | " + " | ".join(heads) + " | Avg. |", "|---|---:|" + "---:|" * len(heads) + "---:|"]
    covered = len(shape.published_average) if shape.published_average else len(s["datasets"])
    footer = ["", "Published: " + "; ".join(sorted(sources)) + f". Δ = ours − published, in points; the published "
              f"average is the source's own, over all {covered} of its columns, so its Δ needs all of them."]
    footer += [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(header + lines + footer) + "\n"


SPEED_KEYS = ("train_tokens_per_s", "train_images_per_s", "train_samples_per_s", "peak_memory_mib",
              "mean_reserved_mib", "train_seconds", "generated_tokens_per_s")


def speed_table(results: list[dict[str, Any]], order: tuple[str, ...]) -> str:
    """Training throughput and memory per method (mean over seeds and lrs), NEAT against LoRA from the same folder."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(results, key=lambda r: order.index(r["method"]) if r["method"] in order else len(order)):
        by_method[r["method"]].append(r)
    unit = next((k for k in SPEED_KEYS[:3] if any(k in r for r in results)), SPEED_KEYS[0])
    mean = {m: {k: sum(r.get(k) or 0 for r in rs) / len(rs) for k in SPEED_KEYS} for m, rs in by_method.items()}
    label = unit.removeprefix("train_").replace("_per_s", "/s")
    lines = [f"| Method | train {label} | peak memory MiB | mean reserved MiB | train s | generated tokens/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for m, v in mean.items():
        memory = [f"{v[k]:.0f}" if v[k] else "—" for k in ("peak_memory_mib", "mean_reserved_mib")]
        generated = f"{v['generated_tokens_per_s']:.0f}" if v["generated_tokens_per_s"] else "—"
        lines.append(f"| {m} | {v[unit]:.0f} | {memory[0]} | {memory[1]} | {v['train_seconds']:.1f} | {generated} |")
    if "neat" in mean and "lora" in mean and mean["lora"][unit]:
        lines += ["", f"NEAT/LoRA training throughput: {mean['neat'][unit] / mean['lora'][unit]:.2f}x"]
        if mean["lora"]["peak_memory_mib"]:
            lines[-1] += f"; peak memory {mean['neat']['peak_memory_mib'] / mean['lora']['peak_memory_mib']:.2f}x"
    device = results[0].get("device", {})
    lines += ["", f"Device: {device.get('name', '?')} ({device.get('type', '?')}), {device.get('world_size', 1)} "
                  "process(es); each method at its own recipe (batch, epochs), so seconds differ by design."]
    return "\n".join(lines) + "\n"


def per_test(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, test set, seed, lr), shaped like a one-dataset result (dataset = the test set)."""
    return [{**r, "dataset": test, "score": score, "selection_score": r.get("selection_score"),
             "config": {**(r.get("config") or {}), "data": {"title": test}}}
            for r in results for test, score in r["scores"].items()]


def lenient_table(results: list[dict[str, Any]], shape: Shape) -> str:
    """The same cells read leniently (results whose tests carry `accuracy_lenient`): a diagnostic beside the headline
    table, never instead of it; "" when no result has one."""
    rows = [{**r, "score": r["tests"][test]["accuracy_lenient"]} for r in per_test(results)
            for test in [r["dataset"]] if "accuracy_lenient" in (r.get("tests") or {}).get(test, {})]
    if not rows:
        return ""
    s, named = summarise(rows, shape), shown_titles(rows, shape)
    lines = ["| Method | " + " | ".join(named.get(d, d) for d in s["datasets"]) + " | Avg. |",
             "|---|" + "---:|" * (len(s["datasets"]) + 1)]
    for m in s["methods"]:
        row = s["rows"][m]
        lines.append(f"| {m} | " + " | ".join(cell_text(row["cells"][d]) if d in row["cells"] else "—"
                                              for d in s["datasets"]) + f" | {row['average']:.1f} |")
    return "\n".join(lines) + "\n\nThe lenient reading also counts an answer given without the source's answer " \
        "marker (the last number, a bare \\boxed{}, $...$): a diagnostic of how far the headline's reading of the " \
        "source decides the score, not a score to compare with the published rows.\n"


def markdown_report(results: list[dict[str, Any]], shape: Shape) -> str:
    """Every section of report.md (without its heading)."""
    if shape.per_test:
        return _per_task_report(results, shape)
    parts = [markdown_table(results, shape)]
    if shape.selection:
        parts.append("## Learning rates chosen on validation\n\n" + selection_table(results, shape))
    published = published_table(results, shape)
    if published:
        parts.append("## Published numbers beside ours\n\n" + published)
    if shape.speed:
        parts.append("## Training speed\n\n" + speed_table(results, tuple(shape.descriptions)))
    return "\n".join(parts)


def _per_task_report(results: list[dict[str, Any]], shape: Shape) -> str:
    """One section per (task, model): the table over its test sets, the selection table when lrs were swept,
    published rows, speed."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        groups[r["dataset"], r["config"]["model"]].append(r)
    parts = []
    for (task, model), rs in sorted(groups.items()):
        rows = per_test(rs)
        parts += [f"## {shape.titles.get(task, task)} ({task}) on {model}\n", markdown_table(rows, shape)]
        limits = {r["config"].get("eval_limit") for r in rs} - {None}
        if limits:
            parts.append(f"Only the first {', '.join(map(str, limits))} examples of each test set were answered.\n")
        if any(len(r["lr_grid"]) > 1 for r in rs):
            parts.append("### Learning rates chosen on validation\n\n" + selection_table(
                [{**r, "dataset": task} for r in rs], shape))
        published = published_table(rows, shape)
        if published:
            parts.append("### Published numbers beside ours\n\n" + published)
        lenient = lenient_table(rs, shape)
        if lenient:
            parts.append("### Lenient reading (a diagnostic, not the headline)\n\n" + lenient)
        if shape.speed:
            parts += ["### Training speed\n", speed_table(rs, tuple(shape.descriptions))]
        if task in shape.task_sections:
            parts.append(shape.task_sections[task](rs))
    return "\n".join(parts)


def plot(results: list[dict[str, Any]], shape: Shape, path: str | os.PathLike) -> Path:
    """Average score against adapter parameters (without the head; symlog x, so 0 has a place), one labelled point
    per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = per_test(results) if shape.per_test else results
    s = summarise(rows, shape)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for m in s["methods"]:
        row = s["rows"][m]
        ax.scatter(row["method_params"], row["average"], s=60, zorder=3, marker="*" if m.startswith("neat") else "o")
        ax.annotate(m, (row["method_params"], row["average"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("trainable parameters without the classifier head (symlog scale)")
    ax.set_ylabel(f"average {shape.score_short} over {len(s['datasets'])} dataset(s) (%)")
    ax.set_title(f"{shape.score_short[0].upper()}{shape.score_short[1:]} vs adapter parameters")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(out: str | os.PathLike, shape: Shape,
                 results: list[dict[str, Any]] | None = None) -> tuple[Path, Path, str]:
    """Write report.md, summary.json and the plot for the results under `out` (`results`: those already read from
    it); returns their paths and the report's text."""
    results = load_results(out) if results is None else results
    if not results:
        raise FileNotFoundError(f"No results in {Path(out) / 'runs'}; run python -m benchmarks.{shape.suite} --out "
                                f"{out} first.")
    out = Path(out)
    text = markdown_report(results, shape)
    table = write_text_atomic(out / TABLE_NAME, f"# {shape.heading}\n\n" + text)
    if shape.per_test:
        summary = {task: summarise(per_test([r for r in results if r["dataset"] == task]), shape)
                   for task in dict.fromkeys(r["dataset"] for r in results)}
    else:
        summary = summarise(results, shape)
    write_json_atomic(out / SUMMARY_NAME, summary)
    return table, plot(results, shape, out / PLOT_NAME), text
