"""The image-classification suite's plan and runs (benchmarks.vtab parses the flags, then calls `run`).

A plan is one `Planned` run per (method, dataset, seed, lr): the recipe at that lr (with its sources), the
method options (sized by --match-params), and the micro-batch and accumulation that make the recipe's batch.
`execute` runs any plan (benchmarks.ablate builds its own, whose runs are named by study variant).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

import neat_vision
from neat_vision.data import DataUnavailableError, Splits, get_spec, load_splits

from . import budget
from . import methods as M
from .catalog import PEFT_METHODS, MethodOptions
from .cli import (DEFAULT_CACHE, method_options, provenance, run_jobs, saved_adapter, setup_device, unfinished,
                  with_recipe_flags)
from .models import ModelSource, ModelUnavailableError, architecture, create_model, data_config
from .recipes import SUITES, Recipe, recipe_for
from .smoke import pretrained_backbone
from .sweep import Run, expand
from .train import Dist, accumulation, evaluate, precision, ranks_agree, seed_everything, split_loaders, train

EXPECTED_ERRORS = (DataUnavailableError, ModelUnavailableError)


@dataclass(frozen=True)
class Planned:
    """One run with everything it trains with."""

    run: Run
    recipe: Recipe          # at run.lr
    options: MethodOptions
    micro_batch: int
    grad_accum: int
    builder: str = ""       # the registered method that builds it, when run.method names something else (a variant)
    config: Mapping[str, Any] = field(default_factory=dict)   # more entries for the result's config

    @property
    def method(self) -> str:
        return self.builder or self.run.method

    @property
    def grid(self) -> tuple[float, ...]:
        """The lrs the run's (method, dataset) sweeps (the recipe keeps its grid at any of its lrs)."""
        return self.recipe.grid


def recipe(args: argparse.Namespace, method: str, dataset: str) -> Recipe:
    """The table's recipe for (method, dataset), then the command line's overrides."""
    return with_recipe_flags(args, recipe_for(method, dataset))


def model_args(args: argparse.Namespace) -> dict[str, Any]:
    suite = SUITES[args.suite]
    return args.model_args if args.model_args is not None else ({} if args.model else suite.model_args)


def design(args: argparse.Namespace) -> ModelSource:
    """The backbone's architecture (for counts): --model / --model-path, else the suite's model."""
    return ModelSource(args.model or SUITES[args.suite].model, args.model_path, model_args(args))


def model_source(args: argparse.Namespace, device: torch.device, dist: Dist) -> ModelSource:
    """The backbone: --model / --model-path, else the suite's (smoke: pre-trained here once, then cached)."""
    suite = SUITES[args.suite]
    if args.model or args.model_path or args.suite != "smoke":
        return design(args)
    if dist.main:
        path = pretrained_backbone(args.cache_dir or DEFAULT_CACHE, suite, device, args.pretrain_epochs,
                                   not args.no_progress)
    if dist.world > 1:
        shared = [str(path) if dist.main else None]
        torch.distributed.broadcast_object_list(shared)
        path = shared[0]
    return ModelSource(suite.model, str(path))


def counts(source: ModelSource, method: str, options: MethodOptions, num_classes: int) -> dict[str, int]:
    """Trainable parameters (all, head, method's own) of `method` on `source`'s architecture with a
    `num_classes` head, counted on the meta device (cached: the method's count does not depend on the head)."""
    key = json.dumps(source.describe(), sort_keys=True)
    own, head = _method_params(key, method, options), _head_params(key, num_classes)
    return {"trainable_params": own + head, "head_params": head, "method_params": own}


def _source(source_json: str) -> ModelSource:
    described = json.loads(source_json)
    return ModelSource(described["model"], described["model_path"], described["model_args"])


@functools.lru_cache(maxsize=None)
def _method_params(source_json: str, method: str, options: MethodOptions) -> int:
    source = _source(source_json)
    return budget.method_params(lambda: architecture(source, 2), method, options)


@functools.lru_cache(maxsize=None)
def _head_params(source_json: str, num_classes: int) -> int:
    with torch.device("meta"):
        model = architecture(_source(source_json), num_classes)
    return sum(p.numel() for name in neat_vision.head_names(model) for p in model.get_submodule(name).parameters())


def sized_options(args: argparse.Namespace) -> dict[str, MethodOptions]:
    """Each method's options: the command line's, sized to --match-params' method when given."""
    if not args.match_params:
        return {m: method_options(args) for m in args.methods}
    source = design(args)
    return budget.match_to(args.match_params, args.methods, lambda m: method_options(args),
                           lambda m, o: counts(source, m, o, 2)["method_params"])


def plan(args: argparse.Namespace, world: int = 1) -> list[Planned]:
    """Every run of the suite, in order (datasets, then methods, seeds, lrs)."""
    options = sized_options(args)
    recipes = {(m, d): recipe(args, m, d) for m in args.methods for d in args.datasets}
    planned = []
    for run in expand(args.methods, args.datasets, args.seeds, lambda m, d: recipes[m, d].grid):
        table = recipes[run.method, run.dataset]
        micro, accum = accumulation(table.batch_size, args.micro_batch, world)
        planned.append(Planned(run, table.at(run.lr), options[run.method], micro, accum))
    return planned


def _lrs(grid: tuple[float, ...]) -> str:
    return ",".join(f"{lr:g}" for lr in grid)


def dry_run(args: argparse.Namespace, planned: list[Planned], world: int) -> str:
    """The plan as a Markdown table: one row per (method, dataset) with its lr grid, batch, micro-batch ×
    accumulation × processes, and exact trainable parameters (method's own, head) on a random-init model."""
    source = design(args)
    lines = [f"Plan: {len(planned)} runs ({len(args.seeds)} seed(s)), model {source.name}"
             + (f" from {source.path}" if source.path else " (random init from timm's config for the counts)")
             + (f", adapters sized to {args.match_params}'s" if args.match_params else "") + ".", "",
             "| method | dataset | lr grid | batch | micro x accum x procs | epochs | adapter params | head params |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    seen = set()
    for p in planned:
        if (p.run.method, p.run.dataset) in seen:
            continue
        seen.add((p.run.method, p.run.dataset))
        found = counts(source, p.run.method, p.options, get_spec(p.run.dataset).num_classes)
        lines.append(f"| {p.run.method} | {p.run.dataset} | {_lrs(p.grid)} ({p.recipe.sweep}) | "
                     f"{p.recipe.batch_size} | {p.micro_batch} x {p.grad_accum} x {world} | {p.recipe.epochs} | "
                     f"{found['method_params']:,} | {found['head_params']:,} |")
    return "\n".join(lines)


def run_job(args: argparse.Namespace, job: Planned, splits: Splits, source: ModelSource, device: torch.device,
            dist: Dist) -> dict[str, Any]:
    """Train and evaluate one planned run; saves the adapter when asked; returns the result."""
    run, plan_recipe, options = job.run, job.recipe, job.options
    seed_everything(run.seed)
    model = create_model(source, splits.num_classes)
    preprocessing = {**data_config(model), **SUITES[args.suite].preprocessing}
    heads = neat_vision.head_names(model)
    model = M.build(job.method, model, options).to(device)
    found = M.parameter_counts(model, heads)
    train_loader, val_loader, test_loader = split_loaders(
        splits, preprocessing, get_spec(run.dataset).hflip, plan_recipe, job.micro_batch, args.workers, run.seed,
        dist, device)
    trained = DistributedDataParallel(model) if dist.world > 1 else model
    start = time.perf_counter()
    stats = train(trained, train_loader, plan_recipe, heads, device, dist, progress=not args.no_progress,
                  grad_accum=job.grad_accum)
    val_acc, test_acc = evaluate(model, val_loader, device, dist), evaluate(model, test_loader, device, dist)
    spec = get_spec(run.dataset)
    return {
        "method": run.method, "dataset": run.dataset, "seed": run.seed, "lr": run.lr, "lr_grid": list(job.grid),
        "accuracy": test_acc, "val_accuracy": val_acc, "selection_score": val_acc,
        **found, **stats, **M.auto_scales(model), "wall_seconds": time.perf_counter() - start,
        "precision": precision(model, device),
        "ranks_agree": ranks_agree(model, test_acc, dist),
        "config": {"suite": args.suite, "recipe": plan_recipe.describe(), "method_options": asdict(options),
                   "matched_to": args.match_params,
                   "peft_target": options.peft_target if job.method in PEFT_METHODS and not options.targets else None,
                   "method": M.DESCRIPTIONS[job.method], **source.describe(), "data_config": preprocessing,
                   "micro_batch": job.micro_batch, "grad_accum": job.grad_accum,
                   "data": {**asdict(spec), "data_dir": args.data_dir, "fingerprint": splits.fingerprint,
                            "sizes": [len(splits.train), len(splits.val), len(splits.test)]}, **job.config},
        **provenance(device, dist), **saved_adapter(args, run, model, dist),
    }


def prepare(args: argparse.Namespace, out: str | os.PathLike) -> None:
    """Settle the results folder (--out, else `out`), DataLoader workers and torch threads (the suite's defaults)."""
    suite = SUITES[args.suite]
    args.out = args.out or str(out)
    args.workers = (suite.workers if suite.workers is not None else min(8, os.cpu_count() or 1)) \
        if args.workers is None else args.workers
    threads = suite.threads if args.threads is None else args.threads
    if threads:
        torch.set_num_threads(threads)


def execute(args: argparse.Namespace, make_plan: Callable[[int], list[Planned]],
            report: Callable | None = None) -> int:
    """Run the plan `make_plan(world size)` makes, skipping finished runs, then write the report (cli.run_jobs)."""
    device, dist = setup_device(args.device)
    planned = {p.run: p for p in make_plan(dist.world)}
    todo = unfinished(args.out, list(planned), dist)
    data = {d: load_splits(d, args.data_dir) for d in dict.fromkeys(r.dataset for r in todo)}
    source = model_source(args, device, dist) if todo else None
    run_jobs(args.out, todo, lambda r: run_job(args, planned[r], data[r.dataset], source, device, dist),
             _summary, dist, report)
    return 0


def world_size() -> int:
    """The processes torchrun would start (for a dry run's batches), without joining a process group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def run(args: argparse.Namespace) -> int:
    prepare(args, Path("results") / args.suite)
    if args.dry_run:
        print(dry_run(args, plan(args, world_size()), world_size()))
        return 0
    return execute(args, lambda world: plan(args, world))


def _summary(result: dict[str, Any]) -> str:
    return (f"test accuracy {result['accuracy']:.4f} (val {result['val_accuracy']:.4f}), "
            f"{result['train_images_per_s']:.0f} train img/s")
