"""PEFT's MetaMathQA leaderboard beside our runs of the same protocol (task metamathqa).

PEFT's published results are data (published_data/peft_metamathqa.json: every result file of
huggingface/peft method_comparison/MetaMathQA/results at the commit it names, the fields as the files record them).
Our rows carry the same figures: GSM8K test accuracy (PEFT's reading), training time, peak reserved memory over the
whole run (generation included, as PEFT's accelerator_memory_max), the reserved memory averaged over the steps,
training tokens/s and trainable parameters; with several seeds, mean ± std.
"""

from __future__ import annotations

import json
import statistics
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "published_data" / "peft_metamathqa.json"
GB = 1e9
MIB = 2 ** 20


@cache
def published() -> dict[str, Any]:
    """PEFT's result files as recorded (about, commit, results)."""
    return json.loads(DATA.read_text())


def _mean_std(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _ours(results: list[dict[str, Any]]) -> list[str]:
    by_method: dict[str, list[dict]] = {}
    for r in results:
        by_method.setdefault(r["method"], []).append(r)
    lines = []
    for method, rs in by_method.items():
        peak = [r.get("peak_reserved_with_generation_mib") for r in rs]
        mean = [r.get("mean_reserved_mib") for r in rs]
        gpu = sorted({str((r.get("device") or {}).get("name") or "?") for r in rs})
        lrs = ", ".join(sorted({f"{r['lr']:g}" for r in rs}))
        lines.append(f"| **{method} (ours)** | {lrs} | {_mean_std([r['scores']['gsm8k_peft'] for r in rs], 100)} | "
                     f"{_mean_std([r.get('train_seconds') for r in rs], digits=0)} | "
                     f"{_mean_std(peak, MIB / GB, 2)} | {_mean_std(mean, MIB / GB, 2)} | "
                     f"{_mean_std([r.get('train_tokens_per_s') for r in rs], digits=0)} | "
                     f"{rs[0]['method_params']:,} | {', '.join(gpu)} | {len(rs)} seed(s) |")
    return lines


def board(results: list[dict[str, Any]]) -> str:
    """The Markdown section: our metamathqa rows, then PEFT's successful results, best accuracy first."""
    data = published()
    theirs = sorted((r for r in data["results"] if r["status"] == "success" and r["test_accuracy"] is not None),
                    key=lambda r: -r["test_accuracy"])
    lines = ["### PEFT's MetaMathQA leaderboard beside ours\n",
             f"PEFT's rows: huggingface/peft method_comparison/MetaMathQA/results@{data['commit']} (one run each, "
             "seed 0; an experiment may change the shared recipe, its lr is shown). Train time: ours is the optimizer steps only; PEFT's train_time also holds data loading, the "
             "final test-set generation and its forgetting passes. Peak: reserved memory over the whole run, "
             "generation included, as PEFT records it (PEFT subtracts the few MiB reserved when its fresh process starts; ours "
             "is absolute, from a run start with the allocator's cache emptied); mean: reserved memory averaged over "
             "the training steps. "
             "Tokens/s: ours over the whole training, PEFT's the mean of its logged windows. Compare figures "
             "across GPUs with care.\n",
             "| method | lr | GSM8K % | train s | peak reserved GB | mean reserved GB | train tokens/s | trainable "
             "params | GPU | runs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    lines += _ours(results)
    for r in theirs:
        lr = f"{r['lr']:g}" if r["lr"] is not None else "—"
        lines.append(f"| {r['experiment']} | {lr} | {100 * r['test_accuracy']:.1f} | {r['train_time_s']:.0f} | "
                     f"{r['peak_reserved_bytes'] / GB:.2f} | "
                     + (f"{r['mean_reserved_bytes'] / GB:.2f}" if r["mean_reserved_bytes"] else "—")
                     + " | " + (f"{r['train_tokens_per_s_mean']:.0f}" if r["train_tokens_per_s_mean"] else "—")
                     + f" | {r['trainable_params']:,} | {r['accelerator']} | 1 |")
    return "\n".join(lines) + "\n"
