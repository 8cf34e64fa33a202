"""Image-classification suite: `python -m benchmarks.vtab [--suite paper|smoke] [--method neat,lora] ...`.

paper: the NEAT paper's eight datasets on ViT-B/16 (ImageNet-21k) from the Hub, each method with its published
       recipe (benchmarks/vtab/recipes.py cites every value) at an effective batch of 256 (FourierFT: 200); needs a
       GPU.
smoke: offline pipeline check on sklearn's digits (a small ViT pre-trained on 0-4 adapts to 5-9), CPU minutes;
       LoRA sized to NEAT's adapter parameters, every method at its validation-selected lr.
Each method trains at every lr of its grid (--lrs, else the recipe's; one lr where a recipe is published), the
report shows the test score of the lr with the best validation accuracy. Each run writes
OUT/runs/<method>_<dataset>_seed<seed>_lr<lr>.json atomically; a rerun skips finished runs. --dry-run lists the
plan (runs, lr grids, batches, exact adapter parameters, where each dataset comes from) without data or training.
Several GPUs: `accelerate launch --multi_gpu --num_processes N -m benchmarks.vtab ...` (or torchrun; the main
process writes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.catalog import PEFT_TARGETS, methods_for
from ..core.flags import (DEFAULT_CACHE, add_option_flags, add_process_flags, add_run_flags, add_save_flag,
                          add_pin_flags, add_source_flags, add_sweep_flags, check_suite, chosen, names, positive_int,
                          suite_parser)
from .recipes import IMAGE_DATASETS, SUITES, recipe_for

METHODS = methods_for("image")


def add_backbone_flags(p: argparse.ArgumentParser, model_help: str = "timm model name (default: the suite's)") -> None:
    """Where data and backbone come from (shared with benchmarks.ablate)."""
    add_source_flags(p, "local data: an ImageFolder tree (train/, test/, optional val/) or a datasets.save_to_disk "
                        "folder, or a folder holding one per dataset name", model_help,
                     "local pretrained weights: a timm folder (config.json + model.safetensors) or a .safetensors "
                     "file for --model")
    p.add_argument("--model-args", type=json.loads, help="JSON of extra timm.create_model arguments")
    p.add_argument("--cache-dir", help=f"smoke suite: where the pre-trained ViT is cached (default {DEFAULT_CACHE})")
    p.add_argument("--pretrain-epochs", type=positive_int, help="smoke suite: epochs of pre-training on digits 0-4")
    add_pin_flags(p)


def parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m benchmarks.vtab", __doc__)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default datasets, methods and model")
    p.add_argument("--method", "--methods", dest="methods", help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--dataset", "--datasets", dest="datasets", help=f"comma list of {', '.join(IMAGE_DATASETS)}")
    add_run_flags(p, "results folder (default results/<suite>)")
    add_backbone_flags(p)
    add_option_flags(p, skip=("peft_target",))
    p.add_argument("--peft-target", choices=list(PEFT_TARGETS), help="where the PEFT baselines go: "
                   + "; ".join(f"{k}: {v}" for k, v in PEFT_TARGETS.items()) + " (default qv)")
    add_sweep_flags(p, "images per forward pass and process (default: the suite's; gradient accumulation makes "
                       "up the recipe's batch)")
    add_process_flags(p)
    add_save_flag(p)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, validated against plain data (nothing heavy is imported here)."""
    p = parser()
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    args.methods = names(args.methods) if args.methods else list(suite.methods)
    args.datasets = names(args.datasets) if args.datasets else list(suite.datasets)
    args.save_adapters = chosen(args.save_adapters, suite.save_adapters)
    args.match_params = suite.match_params if args.match_params is None else args.match_params
    args.micro_batch = args.micro_batch or suite.micro_batch
    args.out = args.out or str(Path("results") / args.suite)
    try:
        check_suite(args, METHODS, args.datasets, recipe_for, "--dataset")
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_timm_model(parser(), args.model)
    from ..core.runner import main_guarded
    from . import plan   # torch, timm and the data libraries load only after the flags are valid

    return main_guarded(plan.run, args, plan.EXPECTED_ERRORS)


def check_timm_model(p: argparse.ArgumentParser, name: str | None) -> None:
    """An argparse error when `name` is given and timm does not know it (imports timm)."""
    if name:
        import timm

        if not timm.is_model(name):
            p.error(f"Unknown timm model {name!r}; timm.list_models() lists the names "
                    "(e.g. vit_base_patch16_224.orig_in21k).")


if __name__ == "__main__":
    sys.exit(main())
