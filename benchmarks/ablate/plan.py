"""The ablation suite's plans, dry run and runs (benchmarks.ablate parses the flags, then calls `run`).

Each (variant, dataset, seed, lr) is one job of the image suite (vtab.plan.execute) or of the GLUE suite
(glue.plan.execute), named by its variant; variants that share a budget are sized by core.budget.match_to.
"""

from __future__ import annotations

import argparse
import functools
import statistics
from dataclasses import replace
from typing import Any

from ..core import budget
from ..core.catalog import MethodOptions, size_knob
from ..core.flags import method_options, with_recipe_flags
from ..core.models import ModelSource
from ..core.recipe import Recipe
from ..core.results import load_results
from ..core.runner import Job, world_size
from ..core.sweep import Run, expand
from ..glue import data as glue_data
from ..glue import plan as glue_plan
from ..glue.recipes import DEV_FRACTION, DEV_MAX, glue_recipe
from ..vtab import plan as vtab_plan
from ..vtab.data import train_images
from ..vtab.recipes import recipe_for
from . import report as ablate_report
from .studies import (ASSUMED_RATE, GLUE_GRID_NOTE, RECIPE_LR_NOTE, STUDIES, SWEEP_GRID_NOTE, SWEEP_GRIDS,
                      Variant, glue_grid, study_variants)

EXPECTED_ERRORS = vtab_plan.EXPECTED_ERRORS + glue_plan.EXPECTED_ERRORS


def variants(args: argparse.Namespace) -> dict[str, Variant]:
    return {v.name: v for v in study_variants(args.study, args.datasets)}


def study_recipe(args: argparse.Namespace, variant: Variant, dataset: str) -> Recipe:
    """The variant's recipe on `dataset` with the study's lr rule (studies.py), then the command line's values."""
    study = STUDIES[args.study]
    if args.domain == "glue":
        table = glue_recipe(variant.method, dataset)
        if variant.method != "lora":   # LoRA trains its published lr; NEAT also trains at it (studies.glue_grid)
            table = table.with_values(GLUE_GRID_NOTE, lrs=glue_grid(dataset))
    elif study.lrs == "recipe":
        table = recipe_for(variant.method, dataset).with_values(RECIPE_LR_NOTE, lrs=())
    else:
        table = recipe_for(variant.method, dataset).with_values(SWEEP_GRID_NOTE, lrs=SWEEP_GRIDS[args.suite])
    return with_recipe_flags(args, table)


def sized_options(args: argparse.Namespace, defaults: dict[str, dict], count) -> dict[str, MethodOptions]:
    """Each variant's options: `defaults[variant]` (a recipe's options), the command line's (--rank), the variant's
    own fields; the study's matched variants sized to its reference's trainable parameters (`count(name, options)`)."""
    found = variants(args)
    options = {n: replace(method_options(args, defaults.get(n)), **v.options) for n, v in found.items()}
    match = STUDIES[args.study].match.get(args.domain)
    if match:
        reference, sized = match
        options.update(budget.match_to(reference, [reference, *sized], options.__getitem__, count,
                                       lambda name: found[name].method))
    return options


def study_config(args: argparse.Namespace, variant: Variant) -> dict[str, Any]:
    """What a result records about its place in the study."""
    return {"study": args.study, "variant": {"name": variant.name, "label": variant.label,
                                             "method": variant.method, "options": dict(variant.options)}}


# --- images ----------------------------------------------------------------------------------------------
def image_counts(args: argparse.Namespace, variant: Variant, options: MethodOptions, num_classes: int = 2
                 ) -> dict[str, int]:
    return vtab_plan.counts(vtab_plan.design(args), variant.method, options, num_classes)


def image_plan(args: argparse.Namespace, world: int = 1) -> list[Job]:
    """Every job of the study on image datasets, in order (datasets, then variants, seeds, lrs)."""
    found = variants(args)
    options = sized_options(args, {}, lambda n, o: image_counts(args, found[n], o)["method_params"])
    recipes = {(n, d): study_recipe(args, v, d) for n, v in found.items() for d in args.datasets}
    return [vtab_plan.job(run, found[run.method].method, recipes[run.method, run.dataset], options[run.method],
                          args.micro_batch, world, study_config(args, found[run.method]))
            for run in expand(found, args.datasets, args.seeds, lambda n, d: recipes[n, d].grid)]


# --- GLUE tasks ------------------------------------------------------------------------------------------
def glue_runs(args: argparse.Namespace) -> list[Run]:
    found = variants(args)
    return expand(found, args.datasets, args.seeds, lambda n, t: study_recipe(args, found[n], t).grid)


def glue_jobs(args: argparse.Namespace, source: ModelSource, world: int = 1) -> list[Job]:
    """Every job of the study on GLUE tasks: one protocol for every variant, LoRA at its single published lr too:
    lr and epoch chosen on the held-out slice of train, never on the validation set the table reports."""
    found = variants(args)
    builder = lambda name: found[name].method  # noqa: E731

    def options(task: str) -> dict[str, MethodOptions]:
        count = lambda n, o: budget.source_params(source, builder(n), o, "text")  # noqa: E731
        return sized_options(args, {n: glue_recipe(v.method, task).options for n, v in found.items()}, count)

    return glue_plan.jobs_for(args, glue_runs(args), source, world,
                              lambda r: study_recipe(args, found[r.method], r.dataset), options, builder,
                              lambda r: {**study_config(args, found[r.method]), "hold_out": True})


# --- the dry run -----------------------------------------------------------------------------------------
def train_items(args: argparse.Namespace, dataset: str, table: Recipe) -> int:
    """Images (GLUE: samples) one run trains on over all epochs: the training split as its card counts it, less what
    the run holds out (images: the validation share where there is no validation split; GLUE: the slice every run
    of a study selects on), x epochs."""
    if args.domain == "glue":
        rows = glue_data.TASKS[dataset].rows[0]
        return (rows - glue_data.held_out_size(rows, DEV_FRACTION, DEV_MAX)) * table.epochs
    return train_images(dataset) * table.epochs


def throughput(args: argparse.Namespace) -> tuple[float | None, str]:
    """(items per second, where the number comes from) for the time estimate."""
    if args.images_per_s:
        return args.images_per_s, "--images-per-s"
    rates = [r.get("train_images_per_s") or r.get("train_samples_per_s") for r in load_results(args.out)]
    rates = [x for x in rates if x]
    if rates:
        return statistics.median(rates), f"measured: the median of the {len(rates)} finished run(s) in {args.out}"
    if args.domain == "image" and args.suite in ASSUMED_RATE:
        return ASSUMED_RATE[args.suite]
    return None, "no throughput known: pass --images-per-s (e.g. from python -m benchmarks.speed)"


def duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 \
        else f"{seconds:.0f} s"


def dry_run(args: argparse.Namespace, world: int = 1, source: ModelSource | None = None) -> str:
    """The study's plan as Markdown: one row per (variant, dataset) with its options, lr grid, batch, epochs, exact
    adapter parameters (counted on a random-init model, no weights) and estimated training time."""
    study, found = STUDIES[args.study], variants(args)
    if args.domain == "glue":
        jobs = glue_jobs(args, source, world)
        count = functools.partial(glue_plan.adapter_params_text, source)
        model = args.model
    else:
        jobs = image_plan(args, world)
        count = lambda job: f"{image_counts(args, found[job.run.method], job.options)['method_params']:,}"  # noqa: E731
        model = vtab_plan.design(args).name
    rate, rate_source = throughput(args)
    lines = [f"Study {study.name}: {study.title}. {study.question}",
             f"Plan: {len(jobs)} runs ({len(args.seeds)} seed(s)) on {model}"
             + (f", parameters matched to {args.match_params}'s" if args.match_params else "") + ".", "",
             "| variant | builds | options | dataset | lr grid | batch | epochs | adapter params | training items "
             "| est. time |", "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    total_items, seen = 0, {}
    for j in jobs:
        items = train_items(args, j.run.dataset, j.recipe)
        total_items += items
        seen.setdefault((j.run.method, j.run.dataset), [j, 0, 0])
        seen[j.run.method, j.run.dataset][1] += 1
        seen[j.run.method, j.run.dataset][2] += items
    for (name, dataset), (j, n, items) in seen.items():
        variant = found[name]
        knob = size_knob(variant.method)
        shown = {**({knob: getattr(j.options, knob)} if knob else {}),
                 **{k: getattr(j.options, k) for k in variant.options}}
        grid = ",".join(f"{lr:g}" for lr in j.grid)
        est = duration(items / rate) if rate else "—"
        lines.append(f"| {name} | {variant.method} | {', '.join(f'{k}={v}' for k, v in shown.items())} | {dataset} | "
                     f"{grid} ({n} run(s)) | {j.recipe.batch_size} | {j.recipe.epochs} | {count(j)} | "
                     f"{items:,} | {est} |")
    lines += ["", f"Training items: epochs x training images (GLUE: samples) per run, summed: {total_items:,}."]
    if rate:
        lines.append(f"Estimated training time: {duration(total_items / rate)} at {rate:,.0f} items/s ({rate_source}). "
                     "An estimate, not a measurement: evaluation, data loading and start-up are not counted.")
    else:
        lines.append(f"Estimated training time: unknown ({rate_source}).")
    return "\n".join(lines)


# --- the command -----------------------------------------------------------------------------------------
def report(args: argparse.Namespace):
    return lambda out: ablate_report.write_report(out, args.study)


def run(args: argparse.Namespace) -> int:
    if args.domain == "glue":
        source = ModelSource(args.model, args.model_path)
        if args.dry_run:
            print(dry_run(args, world_size(), source))
            return 0
        return glue_plan.execute(args, lambda source_, world: glue_jobs(args, source_, world), report(args))
    vtab_plan.settle(args)
    if args.dry_run:
        print(dry_run(args, world_size()))
        return 0
    return vtab_plan.execute(args, lambda world: image_plan(args, world), report(args))

