"""What rebuilds a timm base: the `timm.create_model` arguments in which a model differs from its architecture.

`save_adapter` records them (`base_model_args` in adapter_config.json) through `create_args`, which neat_vision
registers with neat_core; `neat_vision.from_pretrained` passes them back to `create_model`. They are read from the
built model (patch embedding, blocks, stages) and compared with a default instance of the same architecture built
on the meta device (no memory, no download), so only real differences are recorded. The result is checked by
building the architecture with them (again on the meta device): unless every base tensor has the model's shape,
nothing is recorded and a warning says to pass `save_adapter(..., base_model_args={...})`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import neat_core

from .presets import family_of


def _pair(value: Any) -> list[int] | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def _mlp_ratio(mlp: nn.Module, dim: int, packed_gate_doubles: bool = False) -> float:
    """The mlp_ratio that gives this MLP's hidden width as int(dim * mlp_ratio): a short decimal when one does.

    timm Mlp and ViT's packed GluMlp have hidden = fc1 rows, SwiGLU has fc1_g rows; Eva builds its packed GluMlp
    with twice the hidden width (`packed_gate_doubles`)."""
    hidden = (getattr(mlp, "fc1", None) or mlp.fc1_g).out_features
    if packed_gate_doubles and type(mlp).__name__ == "GluMlp":
        hidden //= 2
    for digits in (4, 6, 8):
        ratio = round(hidden / dim, digits)
        if int(dim * ratio) == hidden:
            return ratio
    return (hidden + 0.5) / dim


def _patch_args(model: nn.Module) -> dict[str, Any]:
    embed = model.patch_embed
    return {"img_size": _pair(embed.img_size), "patch_size": _pair(embed.patch_size),
            "in_chans": embed.proj.in_channels, "embed_dim": model.embed_dim}


def _vit(model: nn.Module) -> dict[str, Any]:
    block = model.blocks[0]
    return {**_patch_args(model), "depth": len(model.blocks), "num_heads": block.attn.num_heads,
            "mlp_ratio": _mlp_ratio(block.mlp, model.embed_dim),
            "qkv_bias": block.attn.qkv.bias is not None, "class_token": model.cls_token is not None,
            "reg_tokens": model.num_reg_tokens, "no_embed_class": model.no_embed_class,
            "global_pool": model.global_pool}


def _eva(model: nn.Module) -> dict[str, Any]:
    block = model.blocks[0]
    return {**_patch_args(model), "depth": len(model.blocks), "num_heads": block.attn.num_heads,
            "mlp_ratio": _mlp_ratio(block.mlp, model.embed_dim, packed_gate_doubles=True),
            "class_token": model.cls_token is not None,
            "num_reg_tokens": 0 if model.reg_token is None else model.reg_token.shape[1],
            "no_embed_class": model.no_embed_class,
            "global_pool": model.global_pool}


def _swin(model: nn.Module) -> dict[str, Any]:
    windows = [_pair(stage.blocks[0].window_size) for stage in model.layers]
    return {**_patch_args(model), "depths": [len(stage.blocks) for stage in model.layers],
            "num_heads": [stage.blocks[0].attn.num_heads for stage in model.layers],
            "window_size": windows[0] if all(w == windows[0] for w in windows) else windows,
            "mlp_ratio": model.layers[0].blocks[0].mlp_ratio, "global_pool": model.global_pool}


# timm family (class name, as in presets.FAMILIES) -> reader of the create_model arguments it shows
READERS: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "VisionTransformer": _vit, "Eva": _eva, "SwinTransformer": _swin, "SwinTransformerV2": _swin,
}


def _architecture(model: nn.Module) -> str | None:
    cfg = getattr(model, "pretrained_cfg", None)
    return cfg.get("architecture") if isinstance(cfg, dict) else None


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _base_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Shapes of the base tensors (plain-model names), classifier heads left out (num_classes rebuilds them)."""
    heads = _classifier_names(model)
    return {k: tuple(v.shape) for k, v in neat_core.base_state_dict(model).items()
            if not any(k == h or k.startswith(h + ".") for h in heads)}


def _on_meta(architecture: str, **kwargs: Any) -> nn.Module:
    import timm

    with torch.device("meta"):
        return timm.create_model(architecture, pretrained=False, **kwargs)


def argument_names(model: nn.Module) -> list[str]:
    """The create_model arguments `create_args` reads for this model's family (for error messages)."""
    found = family_of(model)
    if found is None or found[0] not in READERS:
        return []
    return list(READERS[found[0]](model))


def create_args(model: nn.Module) -> dict[str, Any] | None:
    """The create_model arguments (JSON values) in which this timm model differs from its architecture's defaults:
    {} for a default-shaped model, None for a model that is not a timm model of a known family, or whose
    arguments cannot be worked out (with a warning)."""
    architecture, found = _architecture(model), family_of(model)
    if architecture is None or found is None or found[0] not in READERS:
        return None
    read = READERS[found[0]]
    default = _on_meta(architecture)
    mine, theirs = read(model), read(default)
    args = {k: v for k, v in mine.items() if v != theirs.get(k)}
    rebuilt = _on_meta(architecture, num_classes=getattr(model, "num_classes", 0), **args)
    if _base_shapes(rebuilt) != _base_shapes(model):
        warnings.warn(f"Could not work out the timm create_model arguments of this {architecture} (tried "
                      f"{args or 'the defaults'}); the adapter is saved without them. Pass "
                      "save_adapter(..., base_model_args={...}) with the arguments the model was built with.",
                      UserWarning, stacklevel=5)
        return None
    return args
