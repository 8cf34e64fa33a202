"""GLUE suite: `python -m benchmarks.glue --method neat-s,neat-l,lora --tasks cola,sst2 --model roberta-base`.

The papers' setting: RoBERTa (base or large) fine-tuned per task with the recipes of benchmarks/recipes.py (NEAT-S /
NEAT-L from the official scripts, LoRA from its paper's Table 9, FourierFT per task from its scripts; every value
cited), a linear schedule with 6% warm-up, sequences up to --max-length tokens padded per batch, fp32 weights.
Scored on the validation set (MNLI: matched) after every epoch. GLUE's test labels are not public, so:
a method with one lr (a published recipe) reports the best validation epoch, as the papers do; a method that
sweeps lrs (--lrs, or a recipe's grid) holds out a seeded 10% slice of train (at most 2,000 examples), chooses
the lr and the epoch on it, and reports the validation score there. Each (method, task, seed, lr) writes
OUT/runs/<method>_<task>_seed<seed>_lr<lr>.json atomically; a rerun skips finished runs. Offline: --data-dir
(local GLUE copies) and --model-path (a local transformers folder with its tokenizer). On a GPU: bf16 autocast
and batches grouped by length. Several GPUs: `torchrun --nproc_per_node N -m benchmarks.glue ...` (rank 0 writes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .catalog import TEXT_DESCRIPTIONS, check_methods
from .cli import (add_option_flags, add_sweep_flags, check_match, check_options, names, nonnegative_int, positive_int,
                  seed_list)
from .recipes import GLUE_TASKS, glue_setting

DEFAULT_MODEL = "roberta-base"
DEFAULT_WORKERS = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, validated against plain data (nothing heavy is imported here)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.glue", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", "--methods", dest="methods", default=",".join(TEXT_DESCRIPTIONS),
                   help=f"comma list of {', '.join(TEXT_DESCRIPTIONS)} (default all)")
    p.add_argument("--task", "--tasks", dest="tasks", default=",".join(GLUE_TASKS),
                   help=f"comma list of {', '.join(GLUE_TASKS)} (default all)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (mean ± std in the report)")
    p.add_argument("--out", default=str(Path("results") / "glue"), help="results folder (default results/glue)")
    p.add_argument("--data-dir", help="local data instead of the Hub: DIR/<task>: a datasets.save_to_disk folder, "
                                      "or train and validation files (.csv, .json, .jsonl or .parquet)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"transformers model name (default {DEFAULT_MODEL})")
    p.add_argument("--model-path", help="a local transformers folder (save_pretrained) with the model and tokenizer")
    p.add_argument("--max-length", type=positive_int, default=512,
                   help="truncate sequences to this many tokens (default 512)")
    add_option_flags(p, skip=("preset", "peft_target"))
    add_sweep_flags(p, "samples per forward pass and process (default: the recipe's batch, no accumulation)")
    p.add_argument("--workers", type=nonnegative_int, default=DEFAULT_WORKERS,
                   help=f"DataLoader workers per process (default {DEFAULT_WORKERS})")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default torch's)")
    p.add_argument("--device", help="torch device (default cuda when available)")
    p.add_argument("--save-adapters", default="", help="comma list of methods whose trained adapters are saved "
                                                       "under OUT/adapters/ (default none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    args.methods, args.tasks, args.save_adapters = names(args.methods), names(args.tasks), names(args.save_adapters)
    try:
        args.seeds = seed_list(args.seeds)
        check_methods(args.methods + args.save_adapters, TEXT_DESCRIPTIONS)
        [glue_setting(m, t) for m in args.methods for t in args.tasks]
        args.match_params = check_match(args.match_params, TEXT_DESCRIPTIONS)
        check_options(args, args.methods)
        if not (args.methods and args.tasks and args.seeds):
            raise ValueError("--method, --tasks and --seeds each need at least one value.")
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from . import glue_runs   # torch and transformers load only after the flags are valid
    from .cli import main_guarded

    return main_guarded(glue_runs.run, args, glue_runs.EXPECTED_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
