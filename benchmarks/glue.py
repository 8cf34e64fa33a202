"""GLUE suite: `python -m benchmarks.glue --method neat-s,neat-l,lora --tasks cola,sst2 --model roberta-base`.

The paper's setting: RoBERTa (base or large) fine-tuned per task with the recipes of benchmarks/recipes.py (the
paper's NEAT-S / NEAT-L table, the baselines' published settings), AdamW without weight decay, linear schedule
with 6% warm-up, sequences up to --max-length tokens padded per batch. Scored on the validation set (MNLI:
matched) after every epoch: the results hold the best and the last epoch, the table shows the best.
Each (method, task, seed) writes OUT/runs/<method>_<task>_seed<seed>.json atomically; a rerun skips finished
ones. Offline: --data-dir (local GLUE copies) and --model-path (a local transformers folder with its tokenizer).
On a GPU: bf16 autocast and batches grouped by length. Several GPUs: `torchrun --nproc_per_node N -m
benchmarks.glue ...` (rank 0 writes).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from neat_text import glue
from neat_vision.data import hub_reachable, offline_mode

from . import methods as M
from .cli import (add_option_flags, main_guarded, method_options, names, provenance, run_jobs, saved_adapter,
                  setup_device, unfinished, with_recipe_flags)
from .models import ModelSource, ModelUnavailableError, create_text_model, text_tokenizer
from .recipes import GLUE_WARMUP, glue_setting
from .text_methods import TEXT_DESCRIPTIONS, TEXT_METHODS
from .train import Dist, gather_predictions, make_loader, ranks_agree, seed_everything, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.glue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", "--methods", dest="methods", default=",".join(TEXT_METHODS),
                   help=f"comma list of {', '.join(TEXT_METHODS)} (default all)")
    p.add_argument("--task", "--tasks", dest="tasks", default=",".join(glue.TASKS),
                   help=f"comma list of {', '.join(glue.TASKS)} (default all)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (mean ± std in the report)")
    p.add_argument("--out", default=str(Path("results") / "glue"), help="results folder (default results/glue)")
    p.add_argument("--data-dir", help=f"local data instead of the Hub: {glue.DATA_DIR_HELP}")
    p.add_argument("--model", default="roberta-base", help="transformers model name (default roberta-base)")
    p.add_argument("--model-path", help="a local transformers folder (save_pretrained) with the model and tokenizer")
    p.add_argument("--max-length", type=int, default=512, help="truncate sequences to this many tokens (default 512)")
    add_option_flags(p, skip=("preset",))
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers per process (default 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default torch's)")
    p.add_argument("--device", help="torch device (default cuda when available)")
    p.add_argument("--save-adapters", default="", help="comma list of methods whose trained adapters are saved "
                                                       "under OUT/adapters/ (default none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    args.methods, args.tasks, args.save_adapters = names(args.methods), names(args.tasks), names(args.save_adapters)
    try:
        args.seeds = [int(s) for s in names(args.seeds)]
        M.check_methods(args.methods + args.save_adapters, TEXT_METHODS)
        [glue.get_task(t) for t in args.tasks]
        if not (args.methods and args.tasks and args.seeds):
            raise ValueError("--method, --tasks and --seeds each need at least one value.")
    except ValueError as err:
        p.error(str(err))
    return args


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


# --- one run --------------------------------------------------------------------------------------------
def best_epoch(epochs: list[dict[str, float]], metric: str) -> dict[str, float]:
    """The first epoch with the highest `metric`; NaN scores (a correlation of constant outputs) never win."""
    scored = [e for e in epochs if not math.isnan(e[metric])]
    return max(scored or epochs[:1], key=lambda e: e[metric])


def load_data(task: str, data_dir: str | None, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """The task's tokenised train / validation sets (from --data-dir, else the Hub)."""
    spec = glue.get_task(task)
    if data_dir is None and not offline_mode() and not hub_reachable():
        raise glue.unavailable(spec, "the Hugging Face Hub cannot be reached (no network) and no --data-dir "
                                     "was given")
    return {split: glue.tokenize(ds, tokenizer, spec, max_length)
            for split, ds in glue.load_task(task, data_dir).items()}


def run_job(args: argparse.Namespace, method: str, task: str, seed: int, data: dict[str, Any],
            source: ModelSource, tokenizer: Any, device: torch.device, dist: Dist) -> dict[str, Any]:
    """Train one (method, task, seed), scoring the validation set after every epoch; returns the result."""
    from transformers import DataCollatorWithPadding

    spec, setting = glue.get_task(task), glue_setting(method, task)
    plan, options = with_recipe_flags(args, setting.recipe), method_options(args, setting.options)
    seed_everything(seed)
    model = create_text_model(source, spec.num_labels)
    heads = M.head_names(model)
    model = M.build(method, model, options, TEXT_METHODS).to(device)
    counts = M.parameter_counts(model, heads)
    micro = max(1, plan.batch_size // (plan.grad_accum * dist.world))
    collate = DataCollatorWithPadding(tokenizer)
    lengths = [len(ids) for ids in data["train"]["input_ids"]] if device.type == "cuda" else None
    train_loader = make_loader(data["train"], micro, True, args.workers, seed, dist, device, collate, lengths)
    val_loader = make_loader(data["validation"], micro * 2, False, args.workers, seed, dist, device, collate)
    epochs: list[dict[str, float]] = []

    def score_epoch(epoch: int) -> None:
        scores = glue.metrics(spec, *gather_predictions(model, val_loader, device, dist, text_predictions))
        epochs.append({"epoch": epoch + 1, **scores})
        if dist.main and not args.no_progress:
            tqdm.write(f"{method} {task} epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))

    trained = DistributedDataParallel(model) if dist.world > 1 else model
    start = time.perf_counter()
    stats = train(trained, train_loader, plan, heads, device, dist, progress=not args.no_progress,
                  loss_fn=text_loss, unit="samples", on_epoch_end=score_epoch, warmup=GLUE_WARMUP)
    metric = spec.metrics[0]
    best = best_epoch(epochs, metric)
    return {
        "suite": "glue", "method": method, "dataset": task, "seed": seed, "metric": metric,
        "score": best[metric], "best_epoch": best["epoch"], "last_score": epochs[-1][metric],
        "best": best, "last": epochs[-1], "epochs": epochs,
        **counts, **stats, "wall_seconds": time.perf_counter() - start,
        "ranks_agree": ranks_agree(model, best[metric], dist),
        "config": {"recipe": asdict(plan), "warmup": GLUE_WARMUP, "method_options": asdict(options),
                   "method": TEXT_DESCRIPTIONS[method], **source.describe(), "max_length": args.max_length,
                   "data": {**asdict(spec), "data_dir": args.data_dir, "fingerprint": data["train"]._fingerprint,
                            "sizes": [len(data["train"]), len(data["validation"])]}},
        **provenance(device, dist), **saved_adapter(args, method, task, seed, model, dist),
    }


def run(args: argparse.Namespace) -> int:
    device, dist = setup_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    jobs = [(m, t, s) for t in args.tasks for m in args.methods for s in args.seeds]
    todo = unfinished(args.out, jobs, dist)
    source = ModelSource(args.model, args.model_path)
    if todo:
        tokenizer = text_tokenizer(source)
        tasks = dict.fromkeys(t for _, t, _ in todo)
        data = {t: load_data(t, args.data_dir, tokenizer, args.max_length) for t in tasks}
    run_jobs(args.out, todo, lambda m, t, s: run_job(args, m, t, s, data[t], source, tokenizer, device, dist),
             _summary, dist)
    return 0


def _summary(result: dict[str, Any]) -> str:
    return (f"{result['metric']} {result['score']:.4f} at best epoch {result['best_epoch']} (last "
            f"{result['last_score']:.4f}), {result['train_samples_per_s']:.1f} train samples/s")


def main(argv: list[str] | None = None) -> int:
    return main_guarded(run, parse_args(argv), (glue.GlueDataUnavailableError, ModelUnavailableError))


if __name__ == "__main__":
    sys.exit(main())
