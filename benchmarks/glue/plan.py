"""The GLUE suite's runs (benchmarks.glue parses the flags, then calls `run`): data, the loop's hooks for token
batches, one run per (method, task, seed, lr), and the selection protocol (module docstring of benchmarks.glue).
`execute` runs any set of runs, each described by a `TextJob` (benchmarks.ablate's runs are study variants)."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from neat_text import glue
from neat_core.remote import hub_reachable, offline_mode

from . import budget
from . import methods as M
from .catalog import TEXT_DESCRIPTIONS, MethodOptions
from .cli import (method_options, provenance, run_jobs, saved_adapter, setup_device, unfinished,
                  with_recipe_flags)
from .models import ModelSource, ModelUnavailableError, create_text_model, text_architecture, text_tokenizer
from .recipes import DEV_FRACTION, DEV_MAX, DEV_NOTE, Recipe, glue_setting
from .sweep import Run, expand
from .text_methods import TEXT_METHODS
from .train import (Dist, accumulation, gather_predictions, make_loader, precision, ranks_agree, seed_everything,
                    train)

EXPECTED_ERRORS = (glue.GlueDataUnavailableError, ModelUnavailableError)
PAPER_SELECTION = "validation, best epoch (the papers' protocol for a published recipe)"


# --- the training loop's hooks for token batches ------------------------------------------------------
def text_loss(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, int]:
    """The model's own loss (cross-entropy, or MSE for one output) on a padded batch, and its size."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return model(**batch).loss, len(batch["labels"])


def text_predictions(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes (or the regression output) and labels of a padded batch."""
    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits
    return (logits.squeeze(-1) if logits.shape[-1] == 1 else logits.argmax(-1)), batch["labels"]


# --- selection and data -----------------------------------------------------------------------------------
def best_epoch(epochs: list[dict[str, float]], metric: str) -> dict[str, float]:
    """The first epoch with the highest `metric`; NaN scores (a correlation of constant outputs) never win."""
    scored = [e for e in epochs if not math.isnan(e[metric])]
    return max(scored or epochs[:1], key=lambda e: e[metric])


def load_data(task: str, data_dir: str | None, tokenizer: Any, max_length: int, dev: bool) -> dict[str, Any]:
    """The task's tokenised train / validation sets (from --data-dir, else the Hub); with `dev`, also "dev", a
    seeded slice of train to select on (glue.hold_out), and "sweep_train", the rest that runs selecting on it
    train on."""
    spec = glue.get_task(task)
    if data_dir is None and not offline_mode() and not hub_reachable():
        raise glue.unavailable(spec, "the Hugging Face Hub cannot be reached (no network) and no --data-dir "
                                     "was given")
    data = {split: glue.tokenize(ds, tokenizer, spec, max_length)
            for split, ds in glue.load_task(task, data_dir).items()}
    if dev:
        data["sweep_train"], data["dev"] = glue.hold_out(data["train"], DEV_FRACTION, DEV_MAX)
    return data


# --- the plan ----------------------------------------------------------------------------------------------
def recipe(args: argparse.Namespace, method: str, task: str) -> Recipe:
    return with_recipe_flags(args, glue_setting(method, task).recipe)


def sized_options(args: argparse.Namespace, task: str, source: ModelSource) -> dict[str, MethodOptions]:
    """Each method's options on `task`: the recipe table's, then the command line's, sized to --match-params'
    method when given (counted on the model's architecture, no weights)."""
    def options(method: str) -> MethodOptions:
        return method_options(args, glue_setting(method, task).options)

    if not args.match_params:
        return {m: options(m) for m in args.methods}
    count = lambda m, o: budget.method_params(lambda: text_architecture(source, 2), m, o, TEXT_METHODS)  # noqa: E731
    return budget.match_to(args.match_params, args.methods, options, count)


@dataclass(frozen=True)
class TextJob:
    """How a run trains: the registered text method that builds it, its (method, task) recipe with the lr grid,
    its method options, more entries for the result's config, and whether it trains on train less a held-out
    slice and selects on that slice (`hold_out`; None: when its recipe sweeps lrs, the suite's protocol)."""

    method: str
    recipe: Recipe
    options: MethodOptions
    config: Mapping[str, Any] = field(default_factory=dict)
    hold_out: bool | None = None

    @property
    def on_dev(self) -> bool:
        """Whether the run selects its lr and epoch on the held-out slice of train ("dev")."""
        return len(self.recipe.grid) > 1 if self.hold_out is None else self.hold_out


# --- one run ----------------------------------------------------------------------------------------------
def run_job(args: argparse.Namespace, run: Run, job: TextJob, data: dict[str, Any], source: ModelSource,
            tokenizer: Any, device: torch.device, dist: Dist) -> dict[str, Any]:
    """Train one run, scoring validation (and dev, when it selects there) after every epoch; returns the result."""
    from transformers import DataCollatorWithPadding

    spec, table, options = glue.get_task(run.dataset), job.recipe, job.options
    plan, on_dev = table.at(run.lr), job.on_dev
    seed_everything(run.seed)
    model = create_text_model(source, spec.num_labels)
    heads = M.head_names(model)
    model = M.build(job.method, model, options, TEXT_METHODS).to(device)
    counts = M.parameter_counts(model, heads)
    micro, accum = accumulation(plan.batch_size, args.micro_batch or plan.batch_size, dist.world)
    collate = DataCollatorWithPadding(tokenizer)
    train_set = data["sweep_train" if on_dev else "train"]
    lengths = [len(ids) for ids in train_set["input_ids"]] if device.type == "cuda" else None
    train_loader = make_loader(train_set, micro, True, args.workers, run.seed, dist, device, collate, lengths)
    scored = {"": data["validation"], **({"dev_": data["dev"]} if on_dev else {})}
    loaders = {k: make_loader(v, micro * 2, False, args.workers, run.seed, dist, device, collate)
               for k, v in scored.items()}
    epochs: list[dict[str, float]] = []

    def score_epoch(epoch: int) -> None:
        scores = {}
        for prefix, loader in loaders.items():
            found = glue.metrics(spec, *gather_predictions(model, loader, device, dist, text_predictions))
            scores.update({prefix + k: v for k, v in found.items()})
        epochs.append({"epoch": epoch + 1, **scores})
        if dist.main and not args.no_progress:
            tqdm.write(f"{run.method} {run.dataset} lr {run.lr:g} epoch {epoch + 1}: "
                       + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    trained = DistributedDataParallel(model) if dist.world > 1 else model
    start = time.perf_counter()
    stats = train(trained, train_loader, plan, heads, device, dist, progress=not args.no_progress,
                  loss_fn=text_loss, unit="samples", on_epoch_end=score_epoch, grad_accum=accum)
    metric = spec.metrics[0]
    chosen = best_epoch(epochs, ("dev_" if on_dev else "") + metric)
    return {
        "suite": "glue", "method": run.method, "dataset": run.dataset, "seed": run.seed, "lr": run.lr,
        "lr_grid": list(table.grid), "metric": metric, "score": chosen[metric],
        "selection_score": chosen[("dev_" if on_dev else "") + metric],
        "selection": DEV_NOTE if on_dev else PAPER_SELECTION,
        "best_epoch": chosen["epoch"], "best_validation": best_epoch(epochs, metric)[metric],
        "last_score": epochs[-1][metric], "best": chosen, "last": epochs[-1], "epochs": epochs,
        **counts, **stats, **M.auto_scales(model), "wall_seconds": time.perf_counter() - start,
        "precision": precision(model, device),
        "ranks_agree": ranks_agree(model, chosen[metric], dist),
        "config": {"recipe": plan.describe(), "method_options": asdict(options), "matched_to": args.match_params,
                   "option_sources": dict(glue_setting(job.method, run.dataset).option_sources),
                   "method": TEXT_DESCRIPTIONS[job.method], **source.describe(), "max_length": args.max_length,
                   "micro_batch": micro, "grad_accum": accum,
                   "data": {**asdict(spec), "data_dir": args.data_dir, "fingerprint": train_set._fingerprint,
                            "sizes": {"train": len(train_set), "validation": len(data["validation"]),
                                      **({"dev": len(data["dev"])} if on_dev else {})}}, **job.config},
        **provenance(device, dist), **saved_adapter(args, run, model, dist),
    }


def execute(args: argparse.Namespace, runs: list[Run],
            jobs: Callable[[list[Run], ModelSource], dict[Run, TextJob]], report: Callable | None = None) -> int:
    """Run `runs`, skipping finished ones; `jobs(todo, source)` describes the unfinished ones (called only when
    there are some, so a finished sweep needs neither tokenizer nor network). Then the report (cli.run_jobs)."""
    device, dist = setup_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    todo = unfinished(args.out, runs, dist)
    source = ModelSource(args.model, args.model_path)
    if todo:
        tokenizer = text_tokenizer(source)
        described = jobs(todo, source)
        tasks = dict.fromkeys(r.dataset for r in todo)
        data = {t: load_data(t, args.data_dir, tokenizer, args.max_length,
                             dev=any(described[r].on_dev for r in todo if r.dataset == t))
                for t in tasks}
    run_jobs(args.out, todo, lambda r: run_job(args, r, described[r], data[r.dataset], source, tokenizer, device,
                                               dist), _summary, dist, report)
    return 0


def run(args: argparse.Namespace) -> int:
    recipes = {(m, t): recipe(args, m, t) for m in args.methods for t in args.tasks}
    runs = expand(args.methods, args.tasks, args.seeds, lambda m, t: recipes[m, t].grid)

    def jobs(todo: list[Run], source: ModelSource) -> dict[Run, TextJob]:
        options = {t: sized_options(args, t, source) for t in dict.fromkeys(r.dataset for r in todo)}
        return {r: TextJob(r.method, recipes[r.method, r.dataset], options[r.dataset][r.method]) for r in todo}

    return execute(args, runs, jobs)


def _summary(result: dict[str, Any]) -> str:
    return (f"{result['metric']} {result['score']:.4f} at epoch {result['best_epoch']} (selected on "
            f"{'dev' if result['selection'] == DEV_NOTE else 'validation'}; last {result['last_score']:.4f}), "
            f"{result['train_samples_per_s']:.1f} train samples/s")
