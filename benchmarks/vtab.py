"""Image-classification suite: `python -m benchmarks.vtab [--suite paper|smoke] [--method neat,lora] ...`.

paper: the NEAT paper's eight datasets on ViT-B/16 (ImageNet-21k) from the Hub; needs a GPU.
smoke: offline pipeline check on sklearn's digits (a small ViT pre-trained on 0-4 adapts to 5-9), CPU minutes.
Each (method, dataset, seed) writes OUT/runs/<method>_<dataset>_seed<seed>.json atomically; a rerun skips
finished ones. Several GPUs: `torchrun --nproc_per_node N -m benchmarks.vtab ...` (rank 0 writes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import timm
import torch
from torch.nn.parallel import DistributedDataParallel

import neat_vision
from neat_vision.data import DATASETS, DataUnavailableError, Splits, get_spec, load_splits

from . import methods as M
from .cli import (add_option_flags, main_guarded, method_options, names, provenance, run_jobs, saved_adapter,
                  setup_device, unfinished, with_recipe_flags)
from .models import ModelSource, ModelUnavailableError, create_model, data_config
from .recipes import METHOD_LR, SUITES, Recipe, recipe_for
from .smoke import DEFAULT_CACHE, pretrained_backbone
from .train import Dist, evaluate, ranks_agree, seed_everything, split_loaders, train


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.vtab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default datasets, methods and model")
    p.add_argument("--method", "--methods", dest="methods", help=f"comma list of {', '.join(M.METHODS)}")
    p.add_argument("--dataset", "--datasets", dest="datasets", help=f"comma list of {', '.join(DATASETS)}")
    p.add_argument("--seeds", default="0", help="comma list of seeds (mean ± std in the report)")
    p.add_argument("--out", help="results folder (default results/<suite>)")
    p.add_argument("--data-dir", help="local data: an ImageFolder tree (train/, test/, optional val/) or a "
                                      "datasets.save_to_disk folder, or a folder holding one per dataset name")
    p.add_argument("--model", help="timm model name (default: the suite's)")
    p.add_argument("--model-path", help="local pretrained weights: a timm folder (config.json + "
                                        "model.safetensors) or a .safetensors file for --model")
    p.add_argument("--model-args", type=json.loads, help="JSON of extra timm.create_model arguments")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="smoke suite: where the pre-trained ViT is cached")
    p.add_argument("--pretrain-epochs", type=int, help="smoke suite: epochs of pre-training on digits 0-4")
    add_option_flags(p)
    p.add_argument("--workers", type=int, help="DataLoader workers per process (default: the suite's)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the suite's, else torch's)")
    p.add_argument("--device", help="torch device (default cuda when available)")
    p.add_argument("--save-adapters", help="comma list of methods whose trained adapters are saved under "
                                           "OUT/adapters/ (default: the suite's; 'none' for none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    args.methods = names(args.methods) if args.methods else list(suite.methods)
    args.datasets = names(args.datasets) if args.datasets else list(suite.datasets)
    args.save_adapters = (list(suite.save_adapters) if args.save_adapters is None else
                          [] if args.save_adapters == "none" else names(args.save_adapters))
    try:
        args.seeds = [int(s) for s in names(args.seeds)]
        M.check_methods(args.methods + args.save_adapters)
        [(get_spec(d), recipe_for(d)) for d in args.datasets]
        if args.preset is not None and args.preset not in neat_vision.PRESETS:
            raise ValueError(f"Unknown preset {args.preset!r}; choose from {', '.join(neat_vision.PRESETS)}.")
        if args.model and not timm.is_model(args.model):
            raise ValueError(f"Unknown timm model {args.model!r}; timm.list_models() lists the names "
                             "(e.g. vit_base_patch16_224.orig_in21k).")
    except ValueError as err:
        p.error(str(err))
    return args


def recipe(args: argparse.Namespace, method: str, dataset: str) -> Recipe:
    """The table's recipe for `dataset`, the method's learning rate where it has one, then CLI overrides."""
    base = recipe_for(dataset)
    method_lr = METHOD_LR.get(method, {}).get(args.suite)
    base = replace(base, lr=method_lr) if method_lr is not None else base
    return with_recipe_flags(args, base)


def model_source(args: argparse.Namespace, device: torch.device, dist: Dist) -> ModelSource:
    """The backbone: --model / --model-path, else the suite's (smoke: pre-trained here once, then cached)."""
    suite = SUITES[args.suite]
    model_args = args.model_args if args.model_args is not None else ({} if args.model else suite.model_args)
    if args.model or args.model_path or args.suite != "smoke":
        return ModelSource(args.model or suite.model, args.model_path, model_args)
    if dist.main:
        path = pretrained_backbone(args.cache_dir, suite, device, args.pretrain_epochs, not args.no_progress)
    if dist.world > 1:
        shared = [str(path) if dist.main else None]
        torch.distributed.broadcast_object_list(shared)
        path = shared[0]
    return ModelSource(suite.model, str(path))


def run_job(args: argparse.Namespace, method: str, dataset: str, seed: int, splits: Splits, source: ModelSource,
            device: torch.device, dist: Dist) -> dict[str, Any]:
    """Train and evaluate one (method, dataset, seed); saves the adapter when asked; returns the result."""
    plan = recipe(args, method, dataset)
    options = method_options(args)
    seed_everything(seed)
    model = create_model(source, splits.num_classes)
    preprocessing = data_config(model)
    heads = neat_vision.head_names(model)
    model = M.build(method, model, options).to(device)
    counts = M.parameter_counts(model, heads)
    train_loader, val_loader, test_loader = split_loaders(
        splits, preprocessing, get_spec(dataset).hflip, plan, args.workers, seed, dist, device)
    trained = DistributedDataParallel(model) if dist.world > 1 else model
    start = time.perf_counter()
    stats = train(trained, train_loader, plan, heads, device, dist, progress=not args.no_progress)
    val_acc, test_acc = evaluate(model, val_loader, device, dist), evaluate(model, test_loader, device, dist)
    return {
        "method": method, "dataset": dataset, "seed": seed, "accuracy": test_acc, "val_accuracy": val_acc,
        **counts, **stats, "wall_seconds": time.perf_counter() - start,
        "ranks_agree": ranks_agree(model, test_acc, dist),
        "config": {"suite": args.suite, "recipe": asdict(plan), "method_options": asdict(options),
                   "method": M.DESCRIPTIONS[method], **source.describe(), "data_config": preprocessing,
                   "data": {**asdict(get_spec(dataset)), "data_dir": args.data_dir, "fingerprint": splits.fingerprint,
                            "sizes": [len(splits.train), len(splits.val), len(splits.test)]}},
        **provenance(device, dist), **saved_adapter(args, method, dataset, seed, model, dist),
    }


def run(args: argparse.Namespace) -> int:
    device, dist = setup_device(args.device)
    args.out = args.out or str(Path("results") / args.suite)
    args.workers = SUITES[args.suite].workers if args.workers is None else args.workers
    threads = SUITES[args.suite].threads if args.threads is None else args.threads
    if threads:
        torch.set_num_threads(threads)
    jobs = [(m, d, s) for d in args.datasets for m in args.methods for s in args.seeds]
    todo = unfinished(args.out, jobs, dist)
    data = {d: load_splits(d, args.data_dir) for d in dict.fromkeys(d for _, d, _ in todo)}
    source = model_source(args, device, dist) if todo else None
    run_jobs(args.out, todo, lambda m, d, s: run_job(args, m, d, s, data[d], source, device, dist), _summary, dist)
    return 0


def _summary(result: dict[str, Any]) -> str:
    return (f"test accuracy {result['accuracy']:.4f} (val {result['val_accuracy']:.4f}), "
            f"{result['train_images_per_s']:.0f} train img/s")


def main(argv: list[str] | None = None) -> int:
    return main_guarded(run, parse_args(argv), (DataUnavailableError, ModelUnavailableError))


if __name__ == "__main__":
    sys.exit(main())
