"""Command-line pieces the suites share (vtab.py, glue.py): option flags, device and process setup, resume."""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from .methods import MethodOptions
from .recipes import Recipe
from .results import read_result, result_path
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
