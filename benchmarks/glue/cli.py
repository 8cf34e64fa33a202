"""GLUE suite: `python -m benchmarks.glue --method neat-s,neat-l,lora --tasks cola,sst2 --model roberta-base`.

The papers' setting: RoBERTa (base or large) fine-tuned per task with the recipes of benchmarks/glue/recipes.py
(NEAT-S / NEAT-L, LoRA and FourierFT per task from their official scripts; every value cited), a linear schedule
with 6% warm-up, sequences up to 512 tokens (--max-length) padded per batch, fp32 weights; a recipe's batch is the
examples per optimizer step, reached with micro-batches and gradient accumulation (--micro-batch). Scored on the validation set (MNLI: matched) after every epoch. GLUE's test labels are not public, so:
a method with one lr (a published recipe) reports the best validation epoch, as the papers do; a method that
sweeps lrs (--lrs, or a recipe's grid) holds out a seeded 10% slice of train (at most 2,000 examples), chooses
the lr and the epoch on it, and reports the validation score there. Each (method, task, seed, lr) writes
OUT/runs/<method>_<task>_seed<seed>_lr<lr>.json atomically; a rerun skips finished runs. --dry-run lists the
plan. Offline: --data-dir (local GLUE copies) and --model-path (a local transformers folder with its tokenizer).
On a GPU: bf16 autocast and batches grouped by length. Several GPUs: `accelerate launch --multi_gpu
--num_processes N -m benchmarks.glue ...` (or torchrun; the main process writes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.catalog import methods_for
from ..core.flags import (add_option_flags, add_pin_flags, add_process_flags, add_run_flags, add_save_flag,
                          add_source_flags, add_sweep_flags, check_suite, chosen, names, positive_int, suite_parser)
from .recipes import GLUE_TASKS, glue_recipe

DEFAULT_MODEL = "roberta-base"
DEFAULT_WORKERS = 2
METHODS = methods_for("text")


def parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m benchmarks.glue", __doc__)
    p.add_argument("--method", "--methods", dest="methods", default=",".join(METHODS),
                   help=f"comma list of {', '.join(METHODS)} (default all)")
    p.add_argument("--task", "--tasks", dest="tasks", default=",".join(GLUE_TASKS),
                   help=f"comma list of {', '.join(GLUE_TASKS)} (default all)")
    add_run_flags(p, "results folder (default results/glue)")
    add_source_flags(p, "local data instead of the Hub: DIR/<task>: a datasets.save_to_disk folder, or train and "
                        "validation files (.csv, .json, .jsonl or .parquet)",
                     f"transformers model name (default {DEFAULT_MODEL})",
                     "a local transformers folder (save_pretrained) with the model and its tokenizer")
    add_pin_flags(p)
    p.add_argument("--max-length", type=positive_int, help="truncate sequences to this many tokens (default: the "
                                                           "recipe's, 512)")
    add_option_flags(p, skip=("preset", "peft_target"))
    add_sweep_flags(p, "samples per forward pass and process (default: the recipe's micro-batch where it sets one "
                       "(LoRA: its scripts' per-device batch), else its whole batch)")
    add_process_flags(p)
    add_save_flag(p)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, validated against plain data (nothing heavy is imported here)."""
    p = parser()
    args = p.parse_args(argv)
    args.methods, args.tasks = names(args.methods), names(args.tasks)
    args.save_adapters = chosen(args.save_adapters, ())
    args.model = args.model or DEFAULT_MODEL
    args.out = args.out or str(Path("results") / "glue")
    args.workers = DEFAULT_WORKERS if args.workers is None else args.workers
    try:
        check_suite(args, METHODS, args.tasks, glue_recipe, "--tasks")
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ..core.runner import main_guarded
    from . import plan   # torch and transformers load only after the flags are valid

    return main_guarded(plan.run, args, plan.EXPECTED_ERRORS)
