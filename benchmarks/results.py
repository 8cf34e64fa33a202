"""Result files: one JSON per run (method, dataset, seed and, in a sweep, lr) under RESULTS_DIR/runs/, written
atomically. Light: nothing heavy is imported until a file is written or versions are read."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from .sweep import Run

RUNS = "runs"
ADAPTERS = "adapters"


def run_name(method: str, dataset: str, seed: int, lr: float | None = None) -> str:
    """`<method>_<dataset>_seed<seed>`, with `_lr<lr>` for a run of a sweep (benchmarks.sweep.Run.name)."""
    return Run(method, dataset, seed, lr).name if lr is not None else f"{method}_{dataset}_seed{seed}"


def result_path(out: str | os.PathLike, method: str, dataset: str, seed: int, lr: float | None = None) -> Path:
    return Path(out) / RUNS / f"{run_name(method, dataset, seed, lr)}.json"


def adapter_dir(out: str | os.PathLike, method: str, dataset: str, seed: int, lr: float | None = None) -> Path:
    return Path(out) / ADAPTERS / run_name(method, dataset, seed, lr)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` atomically (temporary file + os.replace): readers never see half a file."""
    from neat_core.io import atomic_write

    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def score_of(result: dict[str, Any]) -> float:
    """The number a result is reported by: its "score" (GLUE: the task's metric), else its "accuracy"."""
    return result["score"] if "score" in result else result["accuracy"]


def read_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """The result in `path`, or None when it is missing or unreadable (then the run is redone)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and ("score" in data or "accuracy" in data) else None


def load_results(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished result under `out` (sorted by file name)."""
    folder = Path(out) / RUNS
    found = (read_result(p) for p in sorted(folder.glob("*.json")))
    return [r for r in found if r is not None]


def versions() -> dict[str, str]:
    """Versions of the software that produced a result."""
    import timm
    import torch

    import neat_core

    found = {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
             "neat_peft": neat_core.__version__}
    for optional in ("peft", "transformers", "datasets"):
        try:
            found[optional] = __import__(optional).__version__
        except ImportError:
            pass
    return found
