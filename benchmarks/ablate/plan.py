"""The ablation suite's plans, dry run and runs (benchmarks.ablate parses the flags, then calls `run`).

Each (variant, dataset, seed, lr) is one run of the image suite (image_runs.execute) or of the GLUE suite
(glue_runs.execute), named by its variant; variants that share a budget are sized by budget.match_to.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from typing import Any

from . import ablate_report, budget, glue_runs, image_runs
from .ablations import (ASSUMED_RATE, GLUE_GRID_NOTE, RECIPE_LR_NOTE, STUDIES, SWEEP_GRID_NOTE, SWEEP_GRIDS,
                        TRAIN_IMAGES, Variant, glue_grid, study_variants)
from .catalog import SIZE_KNOBS, MethodOptions
from .cli import method_options, with_recipe_flags
from .models import ModelSource, text_architecture
from .recipes import DEV_FRACTION, DEV_MAX, Recipe, glue_setting, recipe_for
from .results import load_results
from .sweep import Run, expand
from .text_methods import TEXT_METHODS
from .train import accumulation

EXPECTED_ERRORS = image_runs.EXPECTED_ERRORS + glue_runs.EXPECTED_ERRORS


def variants(args: argparse.Namespace) -> dict[str, Variant]:
    return {v.name: v for v in study_variants(args.study, args.datasets)}


def study_recipe(args: argparse.Namespace, variant: Variant, dataset: str) -> Recipe:
    """The variant's recipe on `dataset` with the study's lr rule (ablations.py), then the command line's values."""
    study = STUDIES[args.study]
    if args.domain == "glue":
        table = glue_setting(variant.method, dataset).recipe
        if variant.method != "lora":   # LoRA trains its published lr; NEAT also trains at it (ablations.glue_grid)
            table = table.with_values(GLUE_GRID_NOTE, lrs=glue_grid(dataset))
    elif study.lrs == "recipe":
        table = recipe_for(variant.method, dataset).with_values(RECIPE_LR_NOTE, lrs=())
    else:
        table = recipe_for(variant.method, dataset).with_values(SWEEP_GRID_NOTE, lrs=SWEEP_GRIDS[args.suite])
    return with_recipe_flags(args, table)


def sized_options(args: argparse.Namespace, defaults: dict[str, dict], count) -> dict[str, MethodOptions]:
    """Each variant's options: `defaults[variant]` (a recipe table's), the command line's (--rank), the variant's
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
    return image_runs.counts(image_runs.design(args), variant.method, options, num_classes)


def image_plan(args: argparse.Namespace, world: int = 1) -> list[image_runs.Planned]:
    """Every run of the study on image datasets, in order (datasets, then variants, seeds, lrs)."""
    found = variants(args)
    options = sized_options(args, {}, lambda n, o: image_counts(args, found[n], o)["method_params"])
    recipes = {(n, d): study_recipe(args, v, d) for n, v in found.items() for d in args.datasets}
    planned = []
    for run in expand(found, args.datasets, args.seeds, lambda n, d: recipes[n, d].grid):
        table, variant = recipes[run.method, run.dataset], found[run.method]
        micro, accum = accumulation(table.batch_size, args.micro_batch, world)
        planned.append(image_runs.Planned(run, table.at(run.lr), options[run.method], micro, accum, variant.method,
                                          study_config(args, variant)))
    return planned


# --- GLUE tasks ------------------------------------------------------------------------------------------
def glue_options(args: argparse.Namespace, task: str, source: ModelSource) -> dict[str, MethodOptions]:
    found = variants(args)
    count = lambda n, o: budget.method_params(lambda: text_architecture(source, 2), found[n].method, o,  # noqa: E731
                                              TEXT_METHODS)
    return sized_options(args, {n: glue_setting(v.method, task).options for n, v in found.items()}, count)


def glue_jobs(args: argparse.Namespace, runs: list[Run], source: ModelSource) -> dict[Run, glue_runs.TextJob]:
    found = variants(args)
    options = {t: glue_options(args, t, source) for t in dict.fromkeys(r.dataset for r in runs)}
    # one protocol for every variant, LoRA at its single published lr too: lr and epoch chosen on the held-out
    # slice of train, never on the validation set the table reports
    return {r: glue_runs.TextJob(found[r.method].method, study_recipe(args, found[r.method], r.dataset),
                                 options[r.dataset][r.method], study_config(args, found[r.method]), hold_out=True)
            for r in runs}


def glue_runs_of(args: argparse.Namespace) -> list[Run]:
    return expand(variants(args), args.datasets, args.seeds,
                  lambda n, t: study_recipe(args, variants(args)[n], t).grid)


# --- the dry run -----------------------------------------------------------------------------------------
def train_items(args: argparse.Namespace, dataset: str, table: Recipe) -> int:
    """Images (GLUE: samples) one run trains on over all epochs: the training split (less the slice every GLUE run
    of a study holds out to select on) x epochs."""
    items = TRAIN_IMAGES[dataset]
    if args.domain == "glue":
        items -= min(int(DEV_FRACTION * items), DEV_MAX)
    return items * table.epochs


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
    """The study's plan as Markdown: one row per (variant, dataset) with its options, lr grid, batch, epochs,
    exact adapter parameters (counted on a random-init model, no weights) and estimated training time."""
    study, found = STUDIES[args.study], variants(args)
    if args.domain == "glue":
        runs = glue_runs_of(args)
        options = {t: glue_options(args, t, source) for t in args.datasets}
        rows = [(r, study_recipe(args, found[r.method], r.dataset), options[r.dataset][r.method]) for r in runs]
        count = lambda n, o, d: budget.method_params(  # noqa: E731
            lambda: text_architecture(source, 2), found[n].method, o, TEXT_METHODS)
        model = args.model
    else:
        rows = [(p.run, p.recipe, p.options) for p in image_plan(args, world)]
        count = lambda n, o, d: image_counts(args, found[n], o)["method_params"]  # noqa: E731
        model = image_runs.design(args).name
    rate, rate_source = throughput(args)
    lines = [f"Study {study.name}: {study.title}. {study.question}",
             f"Plan: {len(rows)} runs ({len(args.seeds)} seed(s)) on {model}"
             + (f", parameters matched to {args.match_params}'s" if args.match_params else "") + ".", "",
             "| variant | builds | options | dataset | lr grid | batch | epochs | adapter params | training items "
             "| est. time |", "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    total_items, seen = 0, {}
    for run, table, options in rows:
        items = train_items(args, run.dataset, table)
        total_items += items
        key = (run.method, run.dataset)
        seen.setdefault(key, [table, options, 0, 0])
        seen[key][2] += 1
        seen[key][3] += items
    for (name, dataset), (table, options, n, items) in seen.items():
        variant = found[name]
        knob = SIZE_KNOBS.get(variant.method)
        shown = {**({knob: getattr(options, knob)} if knob else {}), **{k: getattr(options, k) for k in variant.options}}
        grid = ",".join(f"{lr:g}" for lr in table.grid)
        est = duration(items / rate) if rate else "—"
        lines.append(f"| {name} | {variant.method} | {', '.join(f'{k}={v}' for k, v in shown.items())} | {dataset} | "
                     f"{grid} ({n} run(s)) | {table.batch_size} | {table.epochs} | {count(name, options, dataset):,} | "
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
        if args.dry_run:
            print(dry_run(args, source=ModelSource(args.model, args.model_path)))
            return 0
        return glue_runs.execute(args, glue_runs_of(args), lambda todo, source: glue_jobs(args, todo, source),
                                 report(args))
    image_runs.prepare(args, args.out)
    if args.dry_run:
        print(dry_run(args, image_runs.world_size()))
        return 0
    return image_runs.execute(args, lambda world: image_plan(args, world), report(args))
