"""`neat_vision.patch`: NEAT on a timm model, returning the same timm model object."""

from __future__ import annotations

from typing import Any

from torch import nn

from neat_core import NeatConfig
from neat_core.front_end import FrontEnd
from neat_core.front_end import patch as patch_with

from .presets import preset_fields


def head_names(model: nn.Module) -> list[str]:
    """Module names of the classifier head(s) that timm's `get_classifier()` returns."""
    heads = model.get_classifier() if hasattr(model, "get_classifier") else None
    heads = heads if isinstance(heads, (tuple, list)) else [heads]
    ids = {id(h) for h in heads if isinstance(h, nn.Module) and any(True for _ in h.parameters())}
    return [name for name, module in model.named_modules() if id(module) in ids]


def patch(model: nn.Module, config: NeatConfig | None = None, preset: str | None = None,
          train_head: bool = True, adapter: str = "default", **fields: Any) -> nn.Module:
    """Put NEAT on a timm model and return the same object.

    `config` gives the whole NeatConfig; otherwise `preset` ("qv" default, "qv_mlp", "all_linear") chooses
    targets for the model's family, and any NeatConfig field may be given as a keyword (rank=7, depth=6,
    activation="sin", targets=[...] replaces the preset). The base is frozen; the adapter and, unless
    train_head=False, the classifier head (`get_classifier()`) are trainable.
    """
    return patch_with(model, FRONT_END, config, preset, train_head, adapter, **fields)


FRONT_END = FrontEnd("neat_vision", preset_fields, head_names)
