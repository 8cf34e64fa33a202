"""The GLUE suite's methods on transformers encoders, built from methods.py's builders.

NEAT-S / NEAT-L are NEAT with neat_text's `neat_s` / `neat_l` presets (query and value; NEAT-S only in the last
two thirds of the layers). The PEFT baselines adapt the query and value projections (the LoRA paper's GLUE
targets) unless `targets` says otherwise. BitFit trains every bias and the head. Build with
`methods.build(name, model, options, TEXT_METHODS)`.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

import neat_text

from .catalog import TEXT_DESCRIPTIONS
from .methods import METHODS, MethodOptions, Registry

__all__ = ["TEXT_DESCRIPTIONS", "TEXT_METHODS"]


def _neat_preset(preset: str):
    def build(model: nn.Module, opts: MethodOptions) -> nn.Module:
        return METHODS["neat"](model, replace(opts, preset=preset))
    return build


def _on_query_value(name: str):
    """methods.py's PEFT builder `name`, targeting the model's query and value projections by default."""
    def build(model: nn.Module, opts: MethodOptions) -> nn.Module:
        targets = opts.targets or tuple(neat_text.preset_fields(model, "qv")["targets"])
        return METHODS[name](model, replace(opts, targets=targets))
    return build


def _bitfit(model: nn.Module, opts: MethodOptions) -> nn.Module:
    model = METHODS["head"](model, opts)
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.requires_grad_(True)
    return model


TEXT_METHODS: Registry = {
    "neat-s": _neat_preset("neat_s"),
    "neat-l": _neat_preset("neat_l"),
    **{name: _on_query_value(name) for name in ("lora", "dora", "fourierft", "peanut")},
    "bitfit": _bitfit,
    "head": METHODS["head"],
    "full": METHODS["full"],
}
