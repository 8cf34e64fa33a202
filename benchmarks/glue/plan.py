"""The GLUE suite's plan and runs (benchmarks.glue parses the flags, then calls `run`): data, the loop's hooks for
token batches, one run per (method, task, seed, lr), and the selection protocol (benchmarks/glue/cli.py).
`execute` runs any list of jobs (benchmarks.ablate's are study variants, each selecting on the held-out slice)."""

from __future__ import annotations

import argparse
import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from neat_core.remote import hub_reachable, offline_mode

from ..core import budget
from ..core import methods as M
from ..core.catalog import MethodOptions, descriptions
from ..core.errors import SetupError
from ..core.flags import check_device_loaded, method_options, with_recipe_flags
from ..core.loop import (accelerator_for, accumulation, make_loader, precision, predict, ranks_agree,
                         seed_everything, train)
from ..core.models import (ModelSource, ModelUnavailableError, create_text_model, model_pin, resolved,
                           text_tokenizer)
from ..core.recipe import Recipe
from ..core.results import record
from ..core.runner import Job, provenance, run_suite, saved_adapter, world_size
from ..core.sources import WEIGHTS, Sources, shown_revision, source_table
from ..core.sweep import Run, expand
from . import data as glue
from .recipes import DEV_FRACTION, DEV_MAX, DEV_NOTE, glue_recipe
from .shape import SHAPE

EXPECTED_ERRORS = (glue.GlueDataUnavailableError, ModelUnavailableError, SetupError)
PAPER_SELECTION = "validation, best epoch (the papers' protocol for a published recipe)"
DESCRIPTIONS = descriptions("text")


# --- the training loop's hooks for token batches ------------------------------------------------------
def text_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The model's own loss (cross-entropy, or MSE for one output) on a padded batch, and its size."""
    return model(**batch).loss, len(batch["labels"])


def text_predictions(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes (or the regression output) and labels of a padded batch."""
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    return (logits.squeeze(-1) if logits.shape[-1] == 1 else logits.argmax(-1)), batch["labels"]


# --- selection and data -----------------------------------------------------------------------------------
def best_epoch(epochs: list[dict[str, float]], metric: str) -> dict[str, float]:
    """The first epoch with the highest `metric`; NaN scores (a correlation of constant outputs) never win."""
    scored = [e for e in epochs if not math.isnan(e[metric])]
    return max(scored or epochs[:1], key=lambda e: e[metric])


def load_raw(task: str, args: argparse.Namespace, sources: Sources) -> dict[str, Any]:
    """The task's train / validation sets (from --data-dir, else the Hub at the commit `sources` resolves), checked
    against their counts."""
    if args.data_dir is None and not offline_mode() and not hub_reachable():
        raise glue.unavailable(glue.get_task(task), "the Hugging Face Hub cannot be reached (no network) and no "
                                                    "--data-dir was given")
    return glue.load_task(task, args.data_dir, getattr(args, "accept_subset", False), sources)


def load_data(task: str, raw: dict[str, Any], tokenizer: Any, max_length: int, dev: bool) -> dict[str, Any]:
    """The task's tokenised train / validation sets; with `dev`, also "dev", a seeded slice of train to select on
    (glue.hold_out), and "sweep_train", the rest that runs selecting on it train on."""
    spec = glue.get_task(task)
    data = {split: glue.tokenize(ds, tokenizer, spec, max_length) for split, ds in raw.items()}
    if dev:
        data["sweep_train"], data["dev"] = glue.hold_out(data["train"], DEV_FRACTION, DEV_MAX)
    return data


# --- the plan ----------------------------------------------------------------------------------------------
def recipe(args: argparse.Namespace, method: str, task: str) -> Recipe:
    table = with_recipe_flags(args, glue_recipe(method, task))
    return table.with_data("command line", max_length=args.max_length) if args.max_length else table


def sized_options(args: argparse.Namespace, task: str, source: ModelSource, methods: list[str],
                  defaults: Callable[[str], dict], reference: str | None,
                  built_by: Callable[[str], str] = lambda name: name) -> dict[str, MethodOptions]:
    """Each method's options on `task`: `defaults(method)` (a recipe's options), then the command line's, sized to
    `reference`'s trainable parameters when given (counted on the model's architecture, no weights)."""
    def options(name: str) -> MethodOptions:
        return method_options(args, defaults(name))

    if not reference:
        return {m: options(m) for m in methods}
    count = lambda m, o: budget.source_params(source, built_by(m), o, "text")  # noqa: E731
    return budget.match_to(reference, methods, options, count, built_by)


def on_dev(job: Job) -> bool:
    """Whether the run selects its lr and epoch on the held-out slice of train ("dev"): when its recipe sweeps lrs,
    unless the job says otherwise (the ablations hold out for every run)."""
    return job.config.get("hold_out", len(job.grid) > 1)


def jobs_for(args: argparse.Namespace, runs: list[Run], source: ModelSource, world: int,
             table: Callable[[Run], Recipe], options: Callable[[str], dict[str, MethodOptions]],
             built_by: Callable[[str], str] = lambda name: name, config: Callable[[Run], dict] = lambda run: {}
             ) -> list[Job]:
    """A job per run: its recipe (`table(run)`), its options (`options(task)[run.method]`), the micro-batch and
    accumulation that make the recipe's batch (--micro-batch, else the recipe's micro-batch, else the whole batch
    at once)."""
    found = {t: options(t) for t in dict.fromkeys(r.dataset for r in runs)}
    made = []
    for run in runs:
        recipe_ = table(run)
        micro, accum = accumulation(recipe_.batch_size,
                                    args.micro_batch or recipe_.micro_batch or recipe_.batch_size, world)
        made.append(Job(run, built_by(run.method), recipe_.at(run.lr), found[run.dataset][run.method], micro,
                        accum, config(run)))
    return made


def plan(args: argparse.Namespace, source: ModelSource, world: int = 1) -> list[Job]:
    recipes = {(m, t): recipe(args, m, t) for m in args.methods for t in args.tasks}
    runs = expand(args.methods, args.tasks, args.seeds, lambda m, t: recipes[m, t].grid)
    return jobs_for(args, runs, source, world, lambda r: recipes[r.method, r.dataset],
                    lambda t: sized_options(args, t, source, args.methods, lambda m: glue_recipe(m, t).options,
                                            args.match_params))


def adapter_params_text(source: ModelSource, job: Job) -> str:
    """A dry run's adapter parameters of `job` on `source`'s classifier (its config only; "—" without one)."""
    try:
        return f"{budget.source_params(source, job.method, job.options, 'text'):,}"
    except ModelUnavailableError:
        return "— (no config: --model-path)"


def dry_run(args: argparse.Namespace, jobs: list[Job], source: ModelSource, world: int) -> str:
    """The plan as Markdown: per (method, task) its lr grid, batch, micro x accumulation x processes, epochs, how
    the lr and epoch are selected, and exact adapter parameters (counted on the model's config; "—" without one)."""
    count = functools.partial(adapter_params_text, source)

    lines = [f"Plan: {len(jobs)} runs ({len(args.seeds)} seed(s)), model {source.name}"
             + (f" from {source.path}" if source.path else "") + ".", "",
             "| method | task | lr grid | batch | micro x accum x procs | epochs | selection | adapter params |",
             "|---|---|---|---:|---|---:|---|---:|"]
    seen: set = set()
    for j in jobs:
        if (j.run.method, j.run.dataset) not in seen:
            seen.add((j.run.method, j.run.dataset))
            grid = ",".join(f"{lr:g}" for lr in j.grid)
            lines.append(f"| {j.run.method} | {j.run.dataset} | {grid} ({j.recipe.sweep}) | {j.recipe.batch_size} | "
                         f"{j.micro_batch} x {j.grad_accum} x {world} | {j.recipe.epochs} | "
                         f"{'held-out slice of train' if on_dev(j) else 'validation, best epoch'} | {count(j)} |")
    model = (f"--model-path {source.path} (a local copy)" if source.path else
             shown_revision(model_pin(source.name), args.out, args.revisions))
    rows = glue.source_rows(args.tasks, args.data_dir, args.out, args.revisions) + [("model", model, WEIGHTS, None)]
    return "\n".join(lines + source_table(rows, args.out))


# --- one run ----------------------------------------------------------------------------------------------
def run_job(args: argparse.Namespace, job: Job, data: dict[str, Any], source: ModelSource, tokenizer: Any,
            accelerator, sources: Sources) -> dict[str, Any]:
    """Train one job, scoring validation (and dev, when it selects there) after every epoch; returns the result."""
    from transformers import DataCollatorWithPadding

    run, table, options = job.run, job.recipe, job.options
    spec, dev = glue.get_task(run.dataset), on_dev(job)
    start = time.perf_counter()
    seed_everything(run.seed)
    model = create_text_model(source, spec.num_labels)
    heads = M.head_names(model, "text")
    model = M.build(job.method, model, options, "text")
    counts = M.parameter_counts(model, heads)
    collate = DataCollatorWithPadding(tokenizer)
    train_set = data["sweep_train" if dev else "train"]
    lengths = [len(ids) for ids in train_set["input_ids"]] if accelerator.device.type == "cuda" else None
    train_loader = make_loader(train_set, job.micro_batch, True, args.workers, run.seed, accelerator, collate,
                               lengths)
    scored = {"": data["validation"], **({"dev_": data["dev"]} if dev else {})}
    loaders = {k: make_loader(v, job.micro_batch * 2, False, args.workers, run.seed, accelerator, collate)
               for k, v in scored.items()}
    epochs: list[dict[str, float]] = []

    def score_epoch(epoch: int, trained: nn.Module) -> None:
        scores = {}
        for prefix, loader in loaders.items():
            found = glue.metrics(spec, *predict(trained, loader, accelerator, text_predictions))
            scores.update({prefix + k: v for k, v in found.items()})
        epochs.append({"epoch": epoch + 1, **scores})
        if accelerator.is_main_process and not args.no_progress:
            tqdm.write(f"{run.method} {run.dataset} lr {run.lr:g} epoch {epoch + 1}: "
                       + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    model, stats = train(model, train_loader, table, accelerator, text_loss, heads=heads, grad_accum=job.grad_accum,
                         on_epoch_end=score_epoch, progress=not args.no_progress, unit="samples")
    metric = spec.metrics[0]
    chosen = best_epoch(epochs, ("dev_" if dev else "") + metric)
    config = {"recipe": table.describe(), "method_options": asdict(options), "matched_to": args.match_params,
              "method": DESCRIPTIONS[job.method], **source.describe(), "max_length": table.data["max_length"],
              "micro_batch": job.micro_batch, "grad_accum": job.grad_accum,
              "data": {**asdict(spec), "data_dir": args.data_dir, "fingerprint": train_set._fingerprint,
                       "sizes": {"train": len(train_set), "validation": len(data["validation"]),
                                 **({"dev": len(data["dev"])} if dev else {})}}, **job.config}
    return record("glue", run, metric=metric, score=chosen[metric],
                  selection_score=chosen[("dev_" if dev else "") + metric],
                  selection=DEV_NOTE if dev else PAPER_SELECTION, scores={k: v for k, v in chosen.items() if k != "epoch"},
                  counts=counts, stats=stats, config=config, sources=sources.describe(), grid=job.grid,
                  best_epoch=chosen["epoch"],
                  best_validation=best_epoch(epochs, metric)[metric], last_score=epochs[-1][metric], epochs=epochs,
                  **M.auto_scales(model), wall_seconds=time.perf_counter() - start,
                  precision=precision(model, accelerator), ranks_agree=ranks_agree(model, chosen[metric], accelerator),
                  **provenance(accelerator), **saved_adapter(args, job, model, accelerator))


def execute(args: argparse.Namespace, make_jobs: Callable[[ModelSource, int], list[Job]],
            report: Callable | None = None) -> int:
    """Run the jobs `make_jobs(source, processes)` makes, skipping finished ones; the tokenizer and data are loaded
    only when some are unfinished. Then the report."""
    check_device_loaded(args.device)
    accelerator = accelerator_for(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = ModelSource(args.model, args.model_path)
    jobs = make_jobs(source, accelerator.num_processes)

    def prepare(todo: list[Job], sources: Sources) -> tuple[Any, dict[str, Any], ModelSource, Sources]:
        tasks = {t: max(j.recipe.data["max_length"] for j in todo if j.run.dataset == t)
                 for t in dict.fromkeys(j.run.dataset for j in todo)}
        raw = {t: load_raw(t, args, sources) for t in tasks}   # checked before the tokenizer and the model load
        at = resolved(source, sources)
        tokenizer = text_tokenizer(at)
        data = {t: load_data(t, raw[t], tokenizer, tasks[t], dev=any(on_dev(j) for j in todo if j.run.dataset == t))
                for t in tasks}
        return tokenizer, data, at, sources

    def one(job: Job, shared) -> dict[str, Any]:
        tokenizer, data, at, sources = shared
        return run_job(args, job, data[job.run.dataset], at, tokenizer, accelerator, sources)

    return run_suite(args, jobs, accelerator, prepare=prepare, run_job=one, summary=summary,
                     report=report or glue_report)


def glue_report(out):
    from ..core.report import write_report

    return write_report(out, SHAPE)


def run(args: argparse.Namespace) -> int:
    if args.dry_run:
        source = ModelSource(args.model, args.model_path)
        print(dry_run(args, plan(args, source, world_size()), source, world_size()))
        return 0
    return execute(args, lambda source, world: plan(args, source, world))


def summary(result: dict[str, Any]) -> str:
    return (f"{result['metric']} {result['score']:.4f} at epoch {result['best_epoch']} (selected on "
            f"{'dev' if result['selection'] == DEV_NOTE else 'validation'}; last {result['last_score']:.4f}), "
            f"{result['train_samples_per_s']:.1f} train samples/s")
