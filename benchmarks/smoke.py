"""The smoke suite's backbone: a small ViT pre-trained in-process on digits 0-4, cached as safetensors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import timm
import torch
from timm.models import save_for_hf

from neat_vision import head_names
from neat_vision.data import get_spec, load_splits

from .models import data_config
from .recipes import SMOKE_RECIPES, Recipe, Suite
from .train import Dist, accumulation, evaluate, seed_everything, split_loaders, train

PRETRAIN_DATASET = "digits04"


def cache_folder(cache_dir: str | os.PathLike, suite: Suite, recipe: Recipe) -> Path:
    """One folder per (architecture, arguments, pre-training recipe), so a changed setting never reuses old
    weights."""
    values = {k: v for k, v in recipe.describe().items() if k != "sources"}
    key = json.dumps({"model": suite.model, "args": suite.model_args, "recipe": values}, sort_keys=True)
    return Path(cache_dir) / f"smoke-{PRETRAIN_DATASET}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def pretrained_backbone(cache_dir: str | os.PathLike, suite: Suite, device: torch.device, epochs: int | None = None,
                        progress: bool = True) -> Path:
    """The cached folder (timm config.json + model.safetensors); trained and written first if missing."""
    recipe = SMOKE_RECIPES[PRETRAIN_DATASET]
    recipe = replace(recipe, epochs=epochs or recipe.epochs)
    folder = cache_folder(cache_dir, suite, recipe)
    if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
        return folder
    seed_everything(0)
    splits = load_splits(PRETRAIN_DATASET)
    model = timm.create_model(suite.model, pretrained=False, num_classes=splits.num_classes, **suite.model_args)
    micro, accum = accumulation(recipe.batch_size, suite.micro_batch)
    loaders = split_loaders(splits, data_config(model), get_spec(PRETRAIN_DATASET).hflip,
                            recipe, micro, workers=0, seed=0, dist=Dist(), device=device)
    model.to(device)
    stats = train(model, loaders[0], recipe, head_names(model), device, progress=progress, grad_accum=accum)
    accuracy = evaluate(model, loaders[2], device)
    print(f"pre-trained the smoke ViT on digits 0-4 ({recipe.epochs} epochs, "
          f"{stats['train_images_per_s']:.0f} img/s): test accuracy {accuracy:.3f}; cached in {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    tmp.chmod(0o755)  # mkdtemp makes an owner-only folder
    save_for_hf(model.cpu(), str(tmp), safe_serialization=True, model_config={"pretrained_cfg": {"tag": PRETRAIN_DATASET}})
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder

