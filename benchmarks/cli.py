"""Command-line pieces the suites share (vtab, glue, ablate; llm and speed use the flag types): option and sweep
flags, range-checked flag types, recipe overrides, device and process setup, resume, running the jobs and the
report, errors.

Nothing heavy is imported at module level: a suite parses and validates its flags with this module and plain
data (catalog.py, recipes.py) first, so a bad flag fails before torch, timm or transformers load. The functions
that need torch import it when called.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .catalog import ACTIVATIONS, PRESETS, SIZE_KNOBS, MethodOptions
from .recipes import Recipe
from .results import adapter_dir, read_result, result_path, write_json_atomic
from .sweep import Run

if TYPE_CHECKING:
    import torch

    from .train import Dist

DEFAULT_CACHE = Path(".cache") / "neat-peft"   # the smoke suites' generated assets (--cache-dir)


def names(text: str) -> list[str]:
    """A comma list as a list of its non-empty, stripped items."""
    return [t.strip() for t in text.split(",") if t.strip()]


def seed_list(text: str) -> list[int]:
    """--seeds as integers, or a ValueError saying what is expected."""
    try:
        return [int(s) for s in names(text)]
    except ValueError:
        raise ValueError(f"--seeds must be a comma list of integers, got {text!r}.") from None


def numbers(text: str) -> tuple[float, ...]:
    """A comma list of numbers (argparse type of --lrs)."""
    try:
        values = tuple(float(t) for t in names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of numbers such as 1e-3,3e-3,1e-2, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _bounded(kind: type, what: str, low: float, high: float = math.inf, above: bool = False
             ) -> Callable[[str], Any]:
    """An argparse type: `kind(text)` with low <= value < high (low < value when `above`), else an argparse error
    saying what was expected."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (low < value if above else low <= value) or not value < high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = _bounded(int, "a positive integer", 1)
nonnegative_int = _bounded(int, "a non-negative integer", 0)
positive_float = _bounded(float, "a positive number", 0.0, above=True)
nonnegative_float = _bounded(float, "a non-negative number", 0.0)
fraction = _bounded(float, "a number from 0 to below 1", 0.0, 1.0)


def depth_value(text: str) -> int:
    """NEAT's --depth: an even integer >= 2, counted as the paper does (argparse type)."""
    value = positive_int(text)
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(f"expected an even integer >= 2 (2 = A, B; 4 = A, e1, d1, B; ...), "
                                         f"got {text!r}")
    return value


def scale_value(text: str) -> float | str:
    """NEAT's --scale: a number or "auto" (argparse type)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


RECIPE_FLAGS: dict[str, Callable[[str], Any]] = {
    "epochs": positive_int, "batch_size": positive_int, "lr": positive_float, "head_lr": positive_float,
    "weight_decay": nonnegative_float, "clip_grad": nonnegative_float}
# MethodOptions fields whose flag is not simply a positive int / positive number / string / comma list
OPTION_TYPES: dict[str, Callable[[str], Any]] = {"scale": scale_value, "depth": depth_value,
                                                 "lora_dropout": fraction}


def _option_type(f) -> Callable[[str], Any]:
    if f.name in OPTION_TYPES:
        return OPTION_TYPES[f.name]
    if isinstance(f.default, tuple):
        return lambda text: tuple(names(text))
    return {int: positive_int, float: positive_float}.get(type(f.default), type(f.default))


def add_option_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """--<field> for every MethodOptions field (but `skip`) and every recipe value (RECIPE_FLAGS); numbers are
    range-checked by argparse, names by `check_options`."""
    for f in fields(MethodOptions):
        if f.name not in skip:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=_option_type(f),
                           help=f"method option (default {f.default})")
    for name, kind in RECIPE_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="recipe override (default: recipe table"
                       + ("; 0 turns clipping off)" if name == "clip_grad" else ")"))


def check_options(args: argparse.Namespace, methods: list[str]) -> None:
    """A ValueError for a --preset or --activation that does not exist (plain data: catalog.py), or --scale auto
    with a method that takes one number only (PEFT's peanut)."""
    for flag, known in (("preset", PRESETS), ("activation", ACTIVATIONS)):
        value = getattr(args, flag, None)
        if value is not None and value not in known:
            raise ValueError(f"Unknown {flag} {value!r}; choose from {', '.join(known)}.")
    if getattr(args, "scale", None) == "auto" and "peanut" in methods:
        raise ValueError("--scale auto is NEAT's: PEFT's peanut takes one number. Drop peanut from --method or "
                         "give --scale a number.")


def add_sweep_flags(p: argparse.ArgumentParser, micro_help: str, match: bool = True) -> None:
    """--lrs, --match-params (unless `match` is False), --micro-batch."""
    p.add_argument("--lrs", type=numbers, help="comma list of learning rates every method sweeps (default: each "
                   "recipe's grid, or its published lr); the lr with the best validation score is reported")
    if match:
        p.add_argument("--match-params", metavar="METHOD", help="size every other method's adapter (LoRA/DoRA r, "
                       "NEAT rank, FourierFT n, VeRA r) to METHOD's trainable parameters; 'none' turns it off")
    p.add_argument("--micro-batch", type=positive_int, help=micro_help)


def check_match(method: str | None, known: dict[str, str]) -> str | None:
    """The --match-params reference among the `known` methods (None for 'none'), or a ValueError."""
    if method in (None, "none"):
        return None
    if method not in SIZE_KNOBS or method not in known:
        choices = [m for m in known if m in SIZE_KNOBS]
        raise ValueError(f"--match-params {method}: not a method of this suite with an adapter size; choose from "
                         f"{', '.join(choices)}.")
    return method


def method_options(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> MethodOptions:
    """MethodOptions from `defaults` (a recipe table's), then the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(MethodOptions) if getattr(args, f.name, None) is not None}
    return MethodOptions(**{**(defaults or {}), **given})


def with_recipe_flags(args: argparse.Namespace, recipe: Recipe) -> Recipe:
    """`recipe` with the values given on the command line (cited as such): --lrs replaces the grid; giving the
    swept value itself (--lr, or --head-lr for the linear probe) without --lrs trains that value only."""
    given = {k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k, None) is not None}
    if "clip_grad" in given and given["clip_grad"] <= 0:
        given["clip_grad"] = None
    if getattr(args, "lrs", None):
        given["lrs"] = tuple(args.lrs)
    elif recipe.sweep in given:
        given["lrs"] = ()
    return recipe.with_values("command line", **given) if given else recipe


# --- running (these import torch when called) ------------------------------------------------------------
def setup_device(requested: str | None) -> tuple[torch.device, Dist]:
    """The torch device (cuda when available; torchrun's LOCAL_RANK picks the GPU) and the process group."""
    import torch

    from .train import init_distributed

    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device, init_distributed(device)


def device_info(device: torch.device, dist: Dist) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"type": device.type, "name": name, "world_size": dist.world, "cpu_count": os.cpu_count()}


def provenance(device: torch.device, dist: Dist) -> dict[str, Any]:
    """What produced a result: software versions and the device."""
    from .results import versions

    return {"versions": versions(), "device": device_info(device, dist)}


def saved_adapter(args: argparse.Namespace, run: Run, model: torch.nn.Module, dist: Dist) -> dict[str, str]:
    """{"adapter_path": ...} after rank 0 saved the trained adapter, when --save-adapters names the method."""
    if not (dist.main and run.method in args.save_adapters):
        return {}
    from .methods import save_adapter

    path = adapter_dir(args.out, run.method, run.dataset, run.seed, run.lr)
    return {"adapter_path": str(save_adapter(run.method, model, path))}


def _path(out: str | os.PathLike, run: Run):
    return result_path(out, run.method, run.dataset, run.seed, run.lr)


def unfinished(out: str | os.PathLike, runs: list[Run], dist: Dist) -> list[Run]:
    """The runs without a result under `out` (rank 0's view decides for every rank); says how many are skipped."""
    todo = [r for r in runs if read_result(_path(out, r)) is None]
    if dist.world > 1:
        import torch.distributed

        shared = [todo]
        torch.distributed.broadcast_object_list(shared)
        todo = shared[0]
    if dist.main and len(todo) < len(runs):
        print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished in {out}; skipping them.")
    return todo


def run_jobs(out: str | os.PathLike, todo: list[Run], run_job: Callable[[Run], dict],
             summary: Callable[[dict], str], dist: Dist, report: Callable | None = None) -> None:
    """Run every run; rank 0 writes each result atomically as it finishes, prints "<method> on <dataset> seed
    <seed> lr <lr>: <summary(result)>, <parameters>, <seconds>", and at the end writes and prints the report
    (`report(out)` -> (table path, plot path, text); default report.write_report)."""
    if report is None:
        from .report import write_report as report

    for run in todo:
        result = run_job(run)
        if dist.main:
            write_json_atomic(_path(out, run), result)
            print(f"{run.method} on {run.dataset} seed {run.seed} lr {run.lr:g}: {summary(result)}, "
                  f"{result['method_params']:,} trainable + {result['head_params']:,} head, "
                  f"{result['wall_seconds']:.1f} s")
    if dist.main:
        table, plot, text = report(out)
        print("\n" + text)
        print(f"\nreport: {table}\nplot:   {plot}")


def main_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                 expected: tuple[type[Exception], ...]) -> int:
    """run(args); an `expected` error (missing data or weights) is one line on stderr and exit status 2."""
    try:
        return run(args)
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
