"""`neat_vision.from_pretrained`: the timm base model an adapter names, patched and loaded, in one call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

import neat_core
from neat_core.hub import saved_classes
from neat_core.io import load_tensors

from .patch import patch


def timm_name(name: str) -> str:
    """`name` if timm knows it (architecture or architecture.tag), else its architecture: a base pre-trained
    elsewhere (vit_tiny_patch16_224.digits04) takes its weights from a file and its defaults from timm."""
    import timm

    return name if "." not in name or name in timm.list_pretrained(name) else name.split(".")[0]


def create_base(name: str | None, model_path: str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
    """`timm.create_model` for an adapter's base: from `model_path` when given (a timm folder with config.json +
    model.safetensors as `save_for_hf` writes it, or a .safetensors state dict for `name`'s architecture),
    else `name` with the weights timm finds (Hub or cache). Raises one clear error when the weights are missing."""
    import timm

    path = Path(model_path) if model_path is not None else None
    if path is not None and not path.exists():
        raise FileNotFoundError(f"model_path {str(path)!r} does not exist.")
    if path is not None and kwargs.get("pretrained") is False:
        raise ValueError("model_path= loads pretrained weights; it cannot be combined with pretrained=False.")
    if not name and (path is None or path.is_file()):
        raise ValueError("The adapter does not name its base model; pass model_path= (a timm folder).")
    try:
        if path is not None and path.is_dir():
            return timm.create_model(f"local-dir:{path}", **{**kwargs, "pretrained": True})
        if path is not None:
            overlay = {**kwargs.pop("pretrained_cfg_overlay", {}), "file": str(path)}
            return timm.create_model(timm_name(name), **{**kwargs, "pretrained": True},
                                     pretrained_cfg_overlay=overlay)
        return timm.create_model(name if kwargs.get("pretrained") else timm_name(name), **kwargs)
    except (OSError, RuntimeError) as err:  # offline and not cached, unknown tag, unreadable weights
        raise FileNotFoundError(
            f"Cannot build base model {name!r} with pretrained weights ({type(err).__name__}: {err}). Pass "
            "model_path= (a timm folder with config.json + model.safetensors, or a weights file), or "
            "pretrained=False for random weights.") from None


def from_pretrained(repo_id_or_path: str | os.PathLike, revision: str | None = None, *,
                    model_path: str | os.PathLike | None = None, adapter: str = "default",
                    **create_kwargs: Any) -> nn.Module:
    """The timm model an adapter was trained on, with the adapter (and its trained head) loaded, in eval mode.

    `repo_id_or_path`: a folder written by `neat_core.save_adapter` or a Hub repo id ("owner/name", at
    `revision`). The base is `timm.create_model(<base_model in adapter_config.json>, pretrained=True,
    num_classes=<rows of the saved head>, **create_kwargs)`; timm's own options work as usual
    (`pretrained_cfg_overlay=dict(file=...)`, `pretrained=False`, `img_size=...`), and `model_path=` takes the
    base weights from a local timm folder or weights file instead of the Hub.
    """
    folder = neat_core.resolve_adapter(repo_id_or_path, revision)
    meta, config, tensors = neat_core.read_adapter(folder)
    kwargs = {"pretrained": True, **create_kwargs}
    num_classes = saved_classes(config, tensors)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    model = create_base(meta.get("base_model"), model_path, **kwargs)
    patch(model, config=config, train_head=False, adapter=adapter)
    load_tensors(model, config, tensors, adapter, origin=str(repo_id_or_path),
                 saved_for=meta.get("base_model") or meta.get("model_class") or "another model")
    return model.eval()
