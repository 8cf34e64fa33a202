"""The smoke suite's backbone: a small ViT pre-trained in-process on digits 0-4 with the suites' own loop, cached as
safetensors (every process trains; the main one writes the cache)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import timm
from timm.models import save_for_hf

from neat_vision import head_names

from ..core.loop import accumulation, accuracy, seed_everything, train
from ..core.models import data_config
from ..core.recipe import Recipe
from .data import get_spec, load_splits
from .recipes import SMOKE_RECIPES, Suite

PRETRAIN_DATASET = "digits04"


def cache_folder(cache_dir: str | os.PathLike, suite: Suite, recipe: Recipe) -> Path:
    """One folder per (architecture, arguments, pre-training recipe), so a changed setting never reuses old
    weights."""
    values = {k: v for k, v in recipe.describe().items() if k != "sources"}
    key = json.dumps({"model": suite.model, "args": suite.model_args, "recipe": values}, sort_keys=True)
    return Path(cache_dir) / f"smoke-{PRETRAIN_DATASET}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _cached(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def pretrained_backbone(cache_dir: str | os.PathLike, suite: Suite, accelerator, epochs: int | None = None,
                        progress: bool = True) -> Path:
    """The cached folder (timm config.json + model.safetensors); trained and written first if missing."""
    from accelerate.utils import broadcast_object_list

    from .plan import image_predictions, split_loaders, image_loss

    recipe = SMOKE_RECIPES[PRETRAIN_DATASET]
    recipe = replace(recipe, epochs=epochs or recipe.epochs)
    folder = cache_folder(cache_dir, suite, recipe)
    found = [_cached(folder)]
    broadcast_object_list(found)   # the main process's view decides for every process
    if found[0]:
        return folder
    seed_everything(0)
    splits = load_splits(PRETRAIN_DATASET)
    model = timm.create_model(suite.model, pretrained=False, num_classes=splits.num_classes, **suite.model_args)
    micro, accum = accumulation(recipe.batch_size, suite.micro_batch, accelerator.num_processes)
    loaders = split_loaders(splits, data_config(model), get_spec(PRETRAIN_DATASET).hflip, recipe, micro, 0, 0,
                            accelerator)
    trained, stats = train(model, loaders[0], recipe, accelerator, image_loss, heads=head_names(model),
                           grad_accum=accum, progress=progress)
    score = accuracy(trained, loaders[2], accelerator, image_predictions)
    if accelerator.is_main_process:
        print(f"pre-trained the smoke ViT on digits 0-4 ({recipe.epochs} epochs, "
              f"{stats['train_images_per_s']:.0f} img/s): test accuracy {score:.3f}; cached in {folder}")
        _write(accelerator.unwrap_model(trained).cpu(), folder)
    accelerator.wait_for_everyone()
    return folder


def _write(model, folder: Path) -> None:
    """timm's config.json + model.safetensors in `folder`, atomically (a temporary folder renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    tmp.chmod(0o755)  # mkdtemp makes an owner-only folder
    save_for_hf(model, str(tmp), safe_serialization=True, model_config={"pretrained_cfg": {"tag": PRETRAIN_DATASET}})
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
