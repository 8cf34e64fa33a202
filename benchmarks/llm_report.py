"""The reasoning suite's report: per task, the paper's table shape (methods x test sets, average, parameters)
from report.py's pieces, the published numbers of the same base model beside it, and training speed."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from neat_text.reasoning import TASKS

from .llm_recipes import METHODS, PUBLISHED
from .report import PLOT_NAME, SUMMARY_NAME, TABLE_NAME, markdown_table, plot, summarise
from .results import load_results, write_json_atomic, write_text_atomic


def per_test(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, test set, seed), shaped like the other suites' results (dataset = the test set)."""
    named = {t.name: t.title for task in TASKS.values() for t in task.tests}
    return [{"suite": "llm", "method": r["method"], "dataset": test, "seed": r["seed"], "accuracy": s["accuracy"],
             "method_params": r["method_params"], "trainable_params": r["trainable_params"], "head_params": 0,
             "config": {"model": r["config"]["model"], "data": {"title": named.get(test, test)}}}
            for r in results for test, s in r["tests"].items()]


def published_table(task: str, model: str) -> str:
    """Published accuracies for `model` on `task` with their sources ("" when none are listed)."""
    rows = PUBLISHED.get((task, model))
    if not rows:
        return ""
    tests = [t for t in TASKS[task].tests]
    lines = [f"Published for {model} (not run here):", "",
             "| Method | " + " | ".join(t.title for t in tests) + " | Avg. | Source |",
             "|---|" + "---:|" * (len(tests) + 1) + "---|"]
    for method, row in rows.items():
        values = [row.scores[t.name] for t in tests]
        lines.append(f"| {method} | " + " | ".join(f"{v:.1f}" for v in values)
                     + f" | {sum(values) / len(values):.1f} | {row.source} |")
    return "\n".join(lines) + "\n"


def speed_table(results: list[dict[str, Any]]) -> str:
    """Training throughput and memory per method (mean over seeds), NEAT against LoRA from the same folder."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(results, key=lambda r: METHODS.index(r["method"])):
        by_method[r["method"]].append(r)
    mean = {m: {k: sum(r.get(k) or 0 for r in rs) / len(rs) for k in ("train_tokens_per_s", "peak_memory_mib",
                                                                      "train_seconds", "generated_tokens_per_s")}
            for m, rs in by_method.items()}
    lines = ["| Method | train tokens/s | peak memory MiB | train s | generated tokens/s |", "|---|---:|---:|---:|---:|"]
    for m, v in mean.items():
        peak = f"{v['peak_memory_mib']:.0f}" if v["peak_memory_mib"] else "—"
        lines.append(f"| {m} | {v['train_tokens_per_s']:.0f} | {peak} | {v['train_seconds']:.1f} | "
                     f"{v['generated_tokens_per_s']:.0f} |")
    if "neat" in mean and "lora" in mean:
        ratio = mean["neat"]["train_tokens_per_s"] / mean["lora"]["train_tokens_per_s"]
        lines += ["", f"NEAT/LoRA training throughput: {ratio:.2f}x"]
        if mean["lora"]["peak_memory_mib"]:
            lines[-1] += f"; peak memory {mean['neat']['peak_memory_mib'] / mean['lora']['peak_memory_mib']:.2f}x"
    device = results[0].get("device", {})
    lines += ["", f"Device: {device.get('name', '?')} ({device.get('type', '?')}), {device.get('world_size', 1)} "
                  "process(es); each method at its own recipe (batch, epochs), so seconds differ by design."]
    return "\n".join(lines) + "\n"


def llm_markdown(results: list[dict[str, Any]]) -> str:
    """One section per (task, base model): accuracy table, published numbers, speed."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in results:
        groups[r["dataset"], r["config"]["model"]].append(r)
    parts = ["# Reasoning results\n"]
    for (task, model), rs in sorted(groups.items()):
        limit = {r["config"].get("eval_limit") for r in rs} - {None}
        parts += [f"## {TASKS[task].title} ({task}) on {model}\n", markdown_table(per_test(rs))]
        if limit:
            parts.append(f"Only the first {', '.join(map(str, limit))} examples of each test set were answered.\n")
        parts += [published_table(task, model), "### Training speed\n", speed_table(rs)]
    return "\n".join(p for p in parts if p)


def write_llm_report(out: str | os.PathLike) -> tuple[Path, Path, str]:
    """report.md, summary.json and the accuracy-vs-parameters plot for the results under `out`; returns their paths
    and the report's text."""
    results = [r for r in load_results(out) if r.get("suite") == "llm"]
    if not results:
        raise FileNotFoundError(f"No reasoning results in {Path(out) / 'runs'}.")
    out = Path(out)
    text = llm_markdown(results)
    table = write_text_atomic(out / TABLE_NAME, text)
    write_json_atomic(out / SUMMARY_NAME, {task: summarise(per_test([r for r in results if r["dataset"] == task]))
                                           for task in dict.fromkeys(r["dataset"] for r in results)})
    return table, plot(per_test(results), out / PLOT_NAME), text
