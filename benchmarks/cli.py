"""Command-line pieces the suites share (vtab.py, glue.py): option flags, device and process setup, resume,
running the jobs and the report, errors."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

import torch

from .methods import MethodOptions, save_adapter
from .recipes import Recipe
from .report import markdown_table, write_report
from .results import adapter_dir, load_results, read_result, result_path, versions, write_json_atomic
from .train import Dist, init_distributed

RECIPE_FLAGS = {"epochs": int, "batch_size": int, "grad_accum": int, "lr": float, "head_lr": float,
                "weight_decay": float}


def names(text: str) -> list[str]:
    """A comma list as a list of its non-empty, stripped items."""
    return [t.strip() for t in text.split(",") if t.strip()]


def add_option_flags(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """--<field> for every MethodOptions field (but `skip`) and every recipe value (RECIPE_FLAGS)."""
    for f in fields(MethodOptions):
        if f.name not in skip:
            kind = (lambda text: tuple(names(text))) if isinstance(f.default, tuple) else type(f.default)
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, help=f"method option (default {f.default})")
    for name, kind in RECIPE_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="recipe override (default: recipe table)")


def method_options(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> MethodOptions:
    """MethodOptions from `defaults` (a recipe table's), then the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(MethodOptions) if getattr(args, f.name, None) is not None}
    return MethodOptions(**{**(defaults or {}), **given})


def with_recipe_flags(args: argparse.Namespace, recipe: Recipe) -> Recipe:
    """`recipe` with the recipe values given on the command line."""
    return replace(recipe, **{k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k) is not None})


def setup_device(requested: str | None) -> tuple[torch.device, Dist]:
    """The torch device (cuda when available; torchrun's LOCAL_RANK picks the GPU) and the process group."""
    device = torch.device(requested or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device, init_distributed(device)


def device_info(device: torch.device, dist: Dist) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"type": device.type, "name": name, "world_size": dist.world, "cpu_count": os.cpu_count()}


def provenance(device: torch.device, dist: Dist) -> dict[str, Any]:
    """What produced a result: software versions and the device."""
    return {"versions": versions(), "device": device_info(device, dist)}


def saved_adapter(args: argparse.Namespace, method: str, dataset: str, seed: int, model: torch.nn.Module,
                  dist: Dist) -> dict[str, str]:
    """{"adapter_path": ...} after rank 0 saved the trained adapter, when --save-adapters names `method`."""
    if not (dist.main and method in args.save_adapters):
        return {}
    return {"adapter_path": str(save_adapter(method, model, adapter_dir(args.out, method, dataset, seed)))}


def unfinished(out: str | os.PathLike, jobs: list[tuple[str, str, int]], dist: Dist) -> list[tuple[str, str, int]]:
    """The (method, dataset, seed) jobs without a result under `out` (rank 0's view decides for every rank);
    says how many are skipped."""
    todo = [j for j in jobs if read_result(result_path(out, *j)) is None]
    if dist.world > 1:
        shared = [todo]
        torch.distributed.broadcast_object_list(shared)
        todo = shared[0]
    if dist.main and len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished in {out}; skipping them.")
    return todo


def run_jobs(out: str | os.PathLike, todo: list[tuple[str, str, int]], run_job: Callable[[str, str, int], dict],
             summary: Callable[[dict], str], dist: Dist) -> None:
    """Run every (method, dataset, seed) job; rank 0 writes each result atomically as it finishes, prints
    "<method> on <dataset> seed <seed>: <summary(result)>, <parameters>, <seconds>", and at the end writes and
    prints the report."""
    for method, dataset, seed in todo:
        result = run_job(method, dataset, seed)
        if dist.main:
            write_json_atomic(result_path(out, method, dataset, seed), result)
            print(f"{method} on {dataset} seed {seed}: {summary(result)}, {result['method_params']:,} trainable + "
                  f"{result['head_params']:,} head, {result['wall_seconds']:.1f} s")
    if dist.main:
        table, plot = write_report(out)
        print("\n" + markdown_table(load_results(out)))
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
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
