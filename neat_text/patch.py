"""`neat_text.patch`: NEAT on a transformers model, returning the same model object."""

from __future__ import annotations

from typing import Any

from torch import nn

from neat_core import NeatConfig
from neat_core.front_end import FrontEnd
from neat_core.front_end import patch as patch_with

from .presets import preset_fields

# Top-level classification heads of transformers models; DistilBERT's pre_classifier is part of its new head.
HEAD_NAMES = ("pre_classifier", "classifier", "score")


def head_names(model: nn.Module) -> list[str]:
    """Names of the model's classification head modules (`classifier`, `score`, DistilBERT `pre_classifier`)."""
    children = dict(model.named_children())
    return [n for n in HEAD_NAMES if n in children and any(True for _ in children[n].parameters())]


def patch(model: nn.Module, config: NeatConfig | None = None, preset: str | None = None,
          train_head: bool = True, adapter: str = "default", **fields: Any) -> nn.Module:
    """Put NEAT on a transformers model and return the same object (`generate`, `save_pretrained` and
    `Trainer` keep working).

    `config` gives the whole NeatConfig; otherwise `preset` ("qv" default, "neat_s", "neat_l", "paper_llm")
    chooses targets for `model.config.model_type`, and any NeatConfig field may be given as a keyword
    (rank=8, depth=4, targets=[...] replaces the preset). The base is frozen; the adapter and, unless
    train_head=False, the classification head are trainable.
    """
    return patch_with(model, FRONT_END, config, preset, train_head, adapter, **fields)


FRONT_END = FrontEnd("neat_text", preset_fields, head_names)
