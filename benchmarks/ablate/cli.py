"""NEAT's sensitivity studies: `python -m benchmarks.ablate --study depth|activation|targets|scale [--suite paper|smoke]`.

depth:      NEAT depth 2, 4, 6, 8, 10 with the same hyper-parameters (default: StanfordCars; the paper's Fig. 2).
activation: ReLU vs sin(2*pi*x), each at its own validation-selected lr (default: the eight datasets; Table 5).
targets:    q,v vs q,v + MLP vs all linear layers, NEAT's rank set so the trainable parameters are as equal as the
            rank allows (the shared matcher, benchmarks.core.budget; the paper's Fig. 3).
scale:      s = 1 vs s = "auto" (per layer, rms(s*H) = LoRA's rms(A) at init), each at its own validation-selected
            lr and at LoRA's (LoRA sized to NEAT's parameters, on the same grid); image datasets, or GLUE tasks
            (NEAT-L against LoRA's published recipe, --model a transformers model, default roberta-base; every
            run, LoRA's too, chooses its lr and epoch on a seeded held-out slice of train, never on validation).
On the vtab suite's datasets, recipes (benchmarks/vtab/recipes.py, study grids in benchmarks/ablate/studies.py, every value
cited), results layout (OUT/runs/<variant>_<dataset>_seed<seed>_lr<lr>.json, written atomically; a rerun skips
finished runs) and report pieces. Each study writes OUT/report.md (a table shaped like the paper's figure, with
parameter counts and the paper's numbers where they are citable, then the lr chosen per cell) and OUT/<study>.png.
--dry-run lists the runs, their exact parameter counts and an estimate of their training time (epochs x training
images / throughput: --images-per-s, else the median of finished runs under OUT, else a stated assumption; an
estimate, not a measurement). --suite smoke runs a study on the offline digits data in CPU minutes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from ..core.catalog import MethodOptions
from ..core.flags import (add_option_flags, add_process_flags, add_run_flags, add_sweep_flags, check_paths,
                          check_pins, names, positive_float, positive_int, seed_list, suite_parser)
from ..glue.cli import DEFAULT_MODEL as GLUE_MODEL
from ..glue.cli import DEFAULT_WORKERS as GLUE_WORKERS
from ..glue.recipes import GLUE_TASKS, glue_recipe
from ..vtab.cli import add_backbone_flags, check_timm_model
from ..vtab.recipes import IMAGE_DATASETS, SUITES, recipe_for
from .studies import STUDIES, domain, study_variants

SMOKE_SEEDS = "0,1,2"           # our choice: the smoke validation split has 63 images, so one seed is mostly noise


def parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m benchmarks.ablate", __doc__)
    p.add_argument("--study", required=True, choices=list(STUDIES), help="which study")
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default datasets, model and lr grid "
                   "(paper: ViT-B/16 on the Hub, a GPU; smoke: the offline digits, a CPU)")
    p.add_argument("--dataset", "--datasets", "--task", "--tasks", dest="datasets",
                   help=f"comma list of {', '.join(IMAGE_DATASETS)}; the scale study also takes GLUE tasks "
                        f"({', '.join(GLUE_TASKS)}) (default: the study's)")
    add_run_flags(p, "results folder (default results/ablate/<suite>-<study>, GLUE tasks results/ablate/glue-<study>)")
    add_backbone_flags(p, model_help=f"timm model (default: the suite's); with GLUE tasks a transformers model "
                                     f"(default {GLUE_MODEL})")
    add_option_flags(p, skip=tuple(f.name for f in fields(MethodOptions) if f.name != "rank"))
    add_sweep_flags(p, "images (GLUE: samples) per forward pass and process (default: the suite's; gradient "
                       "accumulation makes up the recipe's batch)", match=False)
    p.add_argument("--max-length", type=positive_int, default=512, help="GLUE tasks: truncate to this many tokens")
    p.add_argument("--images-per-s", type=positive_float, help="dry run: training throughput (images or samples per "
                                                               "second) for the time estimate")
    add_process_flags(p)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, validated against plain data (nothing heavy is imported here)."""
    p = parser()
    args = p.parse_args(argv)
    study = STUDIES[args.study]
    args.datasets = names(args.datasets) if args.datasets else list(study.datasets[args.suite])
    seeds = args.seeds or (SMOKE_SEEDS if args.suite == "smoke" else "0")
    try:
        args.seeds = seed_list(seeds)
        if not (args.datasets and args.seeds):
            raise ValueError("--dataset and --seeds each need at least one value.")
        variants = study_variants(args.study, args.datasets)
        args.domain = domain(args.datasets)
        for v in variants:
            for d in args.datasets:
                glue_recipe(v.method, d) if args.domain == "glue" else recipe_for(v.method, d)
        check_paths(args)
        check_pins(args)
    except ValueError as err:
        p.error(str(err))
    if args.domain == "glue":
        args.model = args.model or GLUE_MODEL
        args.workers = GLUE_WORKERS if args.workers is None else args.workers
    else:
        args.micro_batch = args.micro_batch or SUITES[args.suite].micro_batch
    args.out = args.out or str(Path("results") / "ablate" / (
        f"glue-{args.study}" if args.domain == "glue" else f"{args.suite}-{args.study}"))
    match = study.match.get(args.domain)
    args.match_params = match[0] if match else None   # the result files record whose budget the others match
    args.save_adapters = []
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.domain == "image":
        check_timm_model(parser(), args.model)
    from ..core.runner import main_guarded
    from . import plan   # torch, timm / transformers and the data libraries load only after the flags are valid

    return main_guarded(plan.run, args, plan.EXPECTED_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
