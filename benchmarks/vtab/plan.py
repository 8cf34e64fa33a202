"""The image-classification suite's plan and runs (benchmarks.vtab parses the flags, then calls `run`).

A plan is one `core.runner.Job` per (method, dataset, seed, lr): the recipe at that lr (with its sources), the
method options (sized by --match-params), and the micro-batch and accumulation that make the recipe's batch.
`execute` runs any plan (benchmarks.ablate builds its own, whose runs are named by study variant).
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

import neat_vision

from ..core import budget
from ..core import methods as M
from ..core.catalog import PEFT_METHODS, MethodOptions, descriptions
from ..core.errors import SetupError
from ..core.flags import DEFAULT_CACHE, check_device_loaded, method_options, with_recipe_flags
from ..core.loop import (accelerator_for, accumulation, accuracy, make_loader, precision, ranks_agree,
                         seed_everything, train)
from ..core.models import (ModelSource, ModelUnavailableError, architecture, create_model, data_config, model_pin,
                           resolved)
from ..core.recipe import Recipe
from ..core.results import record
from ..core.runner import Job, provenance, run_suite, saved_adapter, world_size
from ..core.sources import WEIGHTS, Sources, shown_revision, source_table
from ..core.sweep import expand
from .data import DataUnavailableError, ImageDataset, Splits, build_transform, get_spec, load_splits, source_rows
from .recipes import SUITES, recipe_for
from .shape import SHAPE
from .smoke import pretrained_backbone

EXPECTED_ERRORS = (DataUnavailableError, ModelUnavailableError, SetupError)
DESCRIPTIONS = descriptions("image")


# --- the loop's hooks for (images, labels) batches --------------------------------------------------------
def image_loss(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int]:
    """Cross-entropy of an (images, labels) batch, and its size."""
    x, y = batch
    return F.cross_entropy(model(x), y), len(x)


def image_predictions(model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and labels of an (images, labels) batch."""
    x, y = batch
    return model(x).argmax(-1), y


def split_loaders(splits: Splits, preprocessing: dict, hflip: bool, recipe: Recipe, micro: int, workers: int,
                  seed: int, accelerator) -> tuple[Any, Any, Any]:
    """Train / val / test loaders of `splits` with the model's timm data config; each process loads `micro` images
    per step (see core.loop.accumulation)."""
    train_tf = build_transform(preprocessing, train=True, hflip=hflip, crop_scale=recipe.data["crop_scale"],
                               seed=seed + accelerator.process_index)
    eval_tf = build_transform(preprocessing, train=False)
    keep = splits.in_memory
    return (make_loader(ImageDataset(splits.train, train_tf, keep), micro, True, workers, seed, accelerator),
            make_loader(ImageDataset(splits.val, eval_tf, keep), micro * 2, False, workers, seed, accelerator),
            make_loader(ImageDataset(splits.test, eval_tf, keep), micro * 2, False, workers, seed, accelerator))


# --- the plan ------------------------------------------------------------------------------------------------
def recipe(args: argparse.Namespace, method: str, dataset: str) -> Recipe:
    """The table's recipe for (method, dataset), then the command line's overrides."""
    return with_recipe_flags(args, recipe_for(method, dataset))


def model_args(args: argparse.Namespace) -> dict[str, Any]:
    suite = SUITES[args.suite]
    return args.model_args if args.model_args is not None else ({} if args.model else suite.model_args)


def design(args: argparse.Namespace) -> ModelSource:
    """The backbone's architecture (for counts): --model / --model-path, else the suite's model."""
    return ModelSource(args.model or SUITES[args.suite].model, args.model_path, model_args(args))


def counts(source: ModelSource, method: str, options: MethodOptions, num_classes: int) -> dict[str, int]:
    """Trainable parameters (all, head, method's own) of `method` on `source`'s architecture with a `num_classes`
    head, counted on the meta device (cached: the method's count does not depend on the head)."""
    own, head = budget.source_params(source, method, options), _head_params(source, num_classes)
    return {"trainable_params": own + head, "head_params": head, "method_params": own}


@functools.lru_cache(maxsize=None)
def _head_params(source: ModelSource, num_classes: int) -> int:
    with torch.device("meta"):
        model = architecture(source, num_classes)
    return sum(p.numel() for name in neat_vision.head_names(model) for p in model.get_submodule(name).parameters())


def sized_options(args: argparse.Namespace) -> dict[str, MethodOptions]:
    """Each method's options: the command line's, sized to --match-params' method when given."""
    if not args.match_params:
        return {m: method_options(args) for m in args.methods}
    source = design(args)
    return budget.match_to(args.match_params, args.methods, lambda m: method_options(args),
                           lambda m, o: counts(source, m, o, 2)["method_params"])


def job(run, method: str, table: Recipe, options: MethodOptions, micro_batch: int, world: int,
        config: dict | None = None) -> Job:
    """The job of `run`: its recipe at run.lr, the micro-batch and accumulation that make the recipe's batch."""
    micro, accum = accumulation(table.batch_size, micro_batch, world)
    return Job(run, method, table.at(run.lr), options, micro, accum, config or {})


def plan(args: argparse.Namespace, world: int = 1) -> list[Job]:
    """Every run of the suite, in order (datasets, then methods, seeds, lrs)."""
    options = sized_options(args)
    recipes = {(m, d): recipe(args, m, d) for m in args.methods for d in args.datasets}
    return [job(run, run.method, recipes[run.method, run.dataset], options[run.method], args.micro_batch, world)
            for run in expand(args.methods, args.datasets, args.seeds, lambda m, d: recipes[m, d].grid)]


def _lrs(grid: tuple[float, ...]) -> str:
    return ",".join(f"{lr:g}" for lr in grid)


def model_row(args: argparse.Namespace, source: ModelSource) -> tuple[str, str, str, None]:
    """The dry run's row for the backbone: its Hub repository @ revision, or the local copy."""
    if source.path:
        return "model", f"--model-path {source.path} (a local copy)", WEIGHTS, None
    if args.suite == "smoke" and not args.model:
        return "model", f"pre-trained here on digits 0-4, cached under {args.cache_dir or DEFAULT_CACHE}", WEIGHTS, None
    return "model", shown_revision(model_pin(source.name, "timm"), args.out, args.revisions), WEIGHTS, None


def dry_run(args: argparse.Namespace, jobs: list[Job], world: int) -> str:
    """The plan as a Markdown table: one row per (method, dataset) with its lr grid, batch, micro-batch ×
    accumulation × processes, and exact trainable parameters (method's own, head) on a random-init model; then
    where each dataset and the backbone come from (revisions, splits used, expected counts)."""
    source = design(args)
    lines = [f"Plan: {len(jobs)} runs ({len(args.seeds)} seed(s)), model {source.name}"
             + (f" from {source.path}" if source.path else " (random init from timm's config for the counts)")
             + (f", adapters sized to {args.match_params}'s" if args.match_params else "") + ".", "",
             "| method | dataset | lr grid | batch | micro x accum x procs | epochs | adapter params | head params |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    seen = set()
    for j in jobs:
        if (j.run.method, j.run.dataset) in seen:
            continue
        seen.add((j.run.method, j.run.dataset))
        found = counts(source, j.method, j.options, get_spec(j.run.dataset).num_classes)
        lines.append(f"| {j.run.method} | {j.run.dataset} | {_lrs(j.grid)} ({j.recipe.sweep}) | "
                     f"{j.recipe.batch_size} | {j.micro_batch} x {j.grad_accum} x {world} | {j.recipe.epochs} | "
                     f"{found['method_params']:,} | {found['head_params']:,} |")
    rows = source_rows(args.datasets, args.data_dir, args.out, args.revisions) + [model_row(args, source)]
    return "\n".join(lines + source_table(rows, args.out))


# --- one run -------------------------------------------------------------------------------------------------
def model_source(args: argparse.Namespace, accelerator, sources: Sources) -> ModelSource:
    """The backbone: --model / --model-path (Hub weights at the commit `sources` resolves), else the suite's (smoke:
    pre-trained here once, then cached)."""
    suite = SUITES[args.suite]
    if args.model or args.model_path or args.suite != "smoke":
        return resolved(design(args), sources, "timm")
    path = pretrained_backbone(args.cache_dir or DEFAULT_CACHE, suite, accelerator, args.pretrain_epochs,
                               not args.no_progress)
    sources.generated(suite.model, f"pre-trained here on digits 0-4 ({path})")
    return ModelSource(suite.model, str(path))


def run_job(args: argparse.Namespace, job: Job, splits: Splits, source: ModelSource, accelerator,
            sources: Sources) -> dict[str, Any]:
    """Train and evaluate one job; saves the adapter when asked; returns the result."""
    run, table, options = job.run, job.recipe, job.options
    start = time.perf_counter()
    seed_everything(run.seed)
    model = create_model(source, splits.num_classes)
    preprocessing = {**data_config(model), **SUITES[args.suite].preprocessing}
    heads = neat_vision.head_names(model)
    model = M.build(job.method, model, options)
    found = M.parameter_counts(model, heads)
    spec = get_spec(run.dataset)
    train_loader, val_loader, test_loader = split_loaders(splits, preprocessing, spec.hflip, table, job.micro_batch,
                                                          args.workers, run.seed, accelerator)
    model, stats = train(model, train_loader, table, accelerator, image_loss, heads=heads, grad_accum=job.grad_accum,
                         progress=not args.no_progress)
    val_acc = accuracy(model, val_loader, accelerator, image_predictions)
    test_acc = accuracy(model, test_loader, accelerator, image_predictions)
    config = {"suite": args.suite, "recipe": table.describe(), "method_options": asdict(options),
              "matched_to": args.match_params,
              "peft_target": options.peft_target if job.method in PEFT_METHODS and not options.targets else None,
              "method": DESCRIPTIONS[job.method], **source.describe(), "data_config": preprocessing,
              "micro_batch": job.micro_batch, "grad_accum": job.grad_accum,
              "data": {**spec.describe(), "data_dir": args.data_dir, "fingerprint": splits.fingerprint,
                       "sizes": [len(splits.train), len(splits.val), len(splits.test)]}, **job.config}
    return record("vtab", run, metric="accuracy", score=test_acc, selection_score=val_acc,
                  selection="validation accuracy", scores={"test": test_acc, "validation": val_acc}, counts=found,
                  stats=stats, config=config, sources=sources.describe(), grid=job.grid, **M.auto_scales(model),
                  wall_seconds=time.perf_counter() - start, precision=precision(model, accelerator),
                  ranks_agree=ranks_agree(model, test_acc, accelerator), **provenance(accelerator),
                  **saved_adapter(args, job, model, accelerator))


def settle(args: argparse.Namespace) -> None:
    """Settle DataLoader workers and torch threads (the suite's defaults)."""
    suite = SUITES[args.suite]
    args.workers = (suite.workers if suite.workers is not None else min(8, os.cpu_count() or 1)) \
        if args.workers is None else args.workers
    threads = suite.threads if args.threads is None else args.threads
    if threads:
        torch.set_num_threads(threads)


def execute(args: argparse.Namespace, make_plan: Callable[[int], list[Job]], report: Callable) -> int:
    """Run the plan `make_plan(processes)` makes, skipping finished runs, then write the report."""
    check_device_loaded(args.device)
    accelerator = accelerator_for(args.device)
    jobs = make_plan(accelerator.num_processes)

    def prepare(todo: list[Job], sources: Sources) -> tuple[dict[str, Splits], ModelSource, Sources]:
        data = {d: load_splits(d, args.data_dir, getattr(args, "accept_subset", False), sources)
                for d in dict.fromkeys(j.run.dataset for j in todo)}
        return data, model_source(args, accelerator, sources), sources

    def one(job: Job, shared) -> dict[str, Any]:
        data, source, sources = shared
        return run_job(args, job, data[job.run.dataset], source, accelerator, sources)

    return run_suite(args, jobs, accelerator, prepare=prepare, run_job=one, summary=summary, report=report)


def report(out: str | os.PathLike):
    from ..core.report import write_report

    return write_report(out, SHAPE)


def run(args: argparse.Namespace) -> int:
    settle(args)
    if args.dry_run:
        print(dry_run(args, plan(args, world_size()), world_size()))
        return 0
    return execute(args, lambda world: plan(args, world), report)


def summary(result: dict[str, Any]) -> str:
    return (f"test accuracy {result['score']:.4f} (val {result['selection_score']:.4f}), "
            f"{result['train_images_per_s']:.0f} train img/s")
