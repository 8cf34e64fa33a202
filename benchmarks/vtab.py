"""Image-classification suite: `python -m benchmarks.vtab [--suite paper|smoke] [--method neat,lora] ...`.

paper: the NEAT paper's eight datasets on ViT-B/16 (ImageNet-21k) from the Hub, each method with its published
       recipe (benchmarks/recipes.py cites every value) at an effective batch of 256 (FourierFT: 200); needs a GPU.
smoke: offline pipeline check on sklearn's digits (a small ViT pre-trained on 0-4 adapts to 5-9), CPU minutes;
       LoRA sized to NEAT's adapter parameters, every method at its validation-selected lr.
Each method trains at every lr of its grid (--lrs, else the recipe's; one lr where a recipe is published), the
report shows the test score of the lr with the best validation accuracy. Each run writes
OUT/runs/<method>_<dataset>_seed<seed>_lr<lr>.json atomically; a rerun skips finished runs. --dry-run lists the
plan (runs, lr grids, batches, exact adapter parameters) without data or training. Several GPUs: `torchrun
--nproc_per_node N -m benchmarks.vtab ...` (rank 0 writes).
"""

from __future__ import annotations

import argparse
import json
import sys

from .catalog import DESCRIPTIONS, PEFT_TARGETS, check_methods
from .cli import (DEFAULT_CACHE, add_option_flags, add_sweep_flags, check_match, check_options, names,
                  nonnegative_int, positive_int, seed_list)
from .recipes import IMAGE_DATASETS, SUITES, recipe_for


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.vtab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default datasets, methods and model")
    p.add_argument("--method", "--methods", dest="methods", help=f"comma list of {', '.join(DESCRIPTIONS)}")
    p.add_argument("--dataset", "--datasets", dest="datasets", help=f"comma list of {', '.join(IMAGE_DATASETS)}")
    p.add_argument("--seeds", default="0", help="comma list of seeds (mean ± std in the report)")
    p.add_argument("--out", help="results folder (default results/<suite>)")
    add_backbone_flags(p)
    add_option_flags(p, skip=("peft_target",))
    p.add_argument("--peft-target", choices=list(PEFT_TARGETS), help="where the PEFT baselines go: "
                   + "; ".join(f"{k}: {v}" for k, v in PEFT_TARGETS.items()) + " (default qv)")
    add_sweep_flags(p, "images per forward pass and process (default: the suite's; gradient accumulation makes "
                       "up the recipe's batch)")
    p.add_argument("--dry-run", action="store_true", help="list the planned runs (method, dataset, lr grid, "
                   "batch, accumulation, exact adapter parameters) from a random-init model; no data, no training")
    add_process_flags(p)
    p.add_argument("--save-adapters", help="comma list of methods whose trained adapters are saved under "
                                           "OUT/adapters/ (default: the suite's; 'none' for none)")
    return p


def add_backbone_flags(p: argparse.ArgumentParser, model_help: str = "timm model name (default: the suite's)") -> None:
    """Where data and backbone come from (shared with benchmarks.ablate)."""
    p.add_argument("--data-dir", help="local data: an ImageFolder tree (train/, test/, optional val/) or a "
                                      "datasets.save_to_disk folder, or a folder holding one per dataset name")
    p.add_argument("--model", help=model_help)
    p.add_argument("--model-path", help="local pretrained weights: a timm folder (config.json + "
                                        "model.safetensors) or a .safetensors file for --model")
    p.add_argument("--model-args", type=json.loads, help="JSON of extra timm.create_model arguments")
    p.add_argument("--cache-dir", help=f"smoke suite: where the pre-trained ViT is cached (default {DEFAULT_CACHE})")
    p.add_argument("--pretrain-epochs", type=positive_int, help="smoke suite: epochs of pre-training on digits 0-4")


def add_process_flags(p: argparse.ArgumentParser) -> None:
    """Workers, threads, device, progress bars (shared with benchmarks.ablate)."""
    p.add_argument("--workers", type=nonnegative_int, help="DataLoader workers per process (default: the suite's)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: the suite's, else torch's)")
    p.add_argument("--device", help="torch device (default cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, validated against plain data (nothing heavy is imported here)."""
    p = parser()
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    args.methods = names(args.methods) if args.methods else list(suite.methods)
    args.datasets = names(args.datasets) if args.datasets else list(suite.datasets)
    args.save_adapters = (list(suite.save_adapters) if args.save_adapters is None else
                          [] if args.save_adapters == "none" else names(args.save_adapters))
    args.match_params = suite.match_params if args.match_params is None else args.match_params
    args.micro_batch = args.micro_batch or suite.micro_batch
    try:
        args.seeds = seed_list(args.seeds)
        check_methods(args.methods + args.save_adapters)
        [recipe_for(m, d) for m in args.methods for d in args.datasets]
        args.match_params = check_match(args.match_params, DESCRIPTIONS)
        check_options(args, args.methods)
        if not (args.methods and args.datasets and args.seeds):
            raise ValueError("--method, --dataset and --seeds each need at least one value.")
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from . import image_runs   # torch, timm and the data libraries load only after the flags are valid
    from .cli import main_guarded

    check_timm_model(parser(), args.model)
    return main_guarded(image_runs.run, args, image_runs.EXPECTED_ERRORS)


def check_timm_model(p: argparse.ArgumentParser, name: str | None) -> None:
    """An argparse error when `name` is given and timm does not know it (imports timm)."""
    if name:
        import timm

        if not timm.is_model(name):
            p.error(f"Unknown timm model {name!r}; timm.list_models() lists the names "
                    "(e.g. vit_base_patch16_224.orig_in21k).")


if __name__ == "__main__":
    sys.exit(main())
