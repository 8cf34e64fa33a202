"""Result files, one schema for every suite: one JSON per run under RESULTS_DIR/runs/, written atomically, read back
for resume and reports. Light: nothing heavy is imported until a file is written or versions are read.

Every result has (`record` builds them):
  schema, suite, method, dataset, seed, lr, lr_grid   which run (lr None: a run without a sweep)
  metric, score                     the reported number (a fraction; "accuracy" for images and generated answers,
                                    the task's metric for GLUE) on the split the suite reports
  selection_score, selection        what chose among the lrs (validation; never the reported split) and how
  scores                            every score the run measured, by name (per test set, per metric, per split)
  trainable_params, head_params, method_params
  train_loss, train_seconds, train_<unit>_per_s, optimizer_steps, ... (the loop's statistics)
  wall_seconds, precision, config (recipe with its sources, method options, model, data), versions, device
  sources                           every data set, file and model the run loaded: its commit (None: unknown), how it
                                    was chosen (pinned, --revision, the lock file, recorded at first download), or
                                    the path of a local copy (core.sources.Sources.describe)
and whatever the suite adds (GLUE's epochs, the reasoning suite's predictions_path, adapter paths, ...).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from .sweep import Run

SCHEMA = 2   # `sources` was added to schema 2 without a bump: readers never needed it, older files lack it
RUNS = "runs"
ADAPTERS = "adapters"


def result_path(out: str | os.PathLike, run: Run) -> Path:
    return Path(out) / RUNS / f"{run.name}.json"


def adapter_dir(out: str | os.PathLike, run: Run) -> Path:
    return Path(out) / ADAPTERS / run.name


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` atomically (temporary file + os.replace): readers never see half a file."""
    from neat_core.io import atomic_write

    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_result(path: str | os.PathLike) -> dict[str, Any] | None:
    """The result in `path`, or None when it is missing, unreadable or of another schema (then the run is redone)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA and "score" in data else None


def load_results(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished result under `out` (sorted by file name)."""
    found = (read_result(p) for p in sorted((Path(out) / RUNS).glob("*.json")))
    return [r for r in found if r is not None]


def record(suite: str, run: Run, *, metric: str, score: float, selection_score: float | None, selection: str,
           scores: dict[str, Any], counts: dict[str, int], stats: dict[str, Any], config: dict[str, Any],
           sources: dict[str, Any], grid: tuple[float, ...] = (), **extra: Any) -> dict[str, Any]:
    """One result in the shared schema (see the module docstring); `extra` holds the suite's own entries."""
    return {"schema": SCHEMA, "suite": suite, "method": run.method, "dataset": run.dataset, "seed": run.seed,
            "lr": run.lr, "lr_grid": list(grid), "metric": metric, "score": score,
            "selection_score": selection_score, "selection": selection, "scores": scores, **counts, **stats,
            "config": config, "sources": sources, **extra}


def versions() -> dict[str, str]:
    """Versions of the software that produced a result."""
    import torch

    import neat_core

    found = {"python": platform.python_version(), "torch": torch.__version__, "neat_peft": neat_core.__version__}
    for optional in ("timm", "peft", "transformers", "datasets", "accelerate"):
        try:
            found[optional] = __import__(optional).__version__
        except ImportError:
            pass
    return found
