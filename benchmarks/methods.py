"""Every fine-tuning method of the benchmarks, built in one place.

`build(name, model, options)` takes a timm classifier (with its fresh head) and returns the model to train:
NEAT through `neat_vision.patch` (q and v slices of attn.qkv by default), the baselines through PEFT. On a timm
ViT the PEFT baselines adapt q and v only, as the NEAT and FourierFT papers do: `neat_vision.qkv.split_qkv`
first gives PEFT separate q, k, v linears in place of the fused `attn.qkv` (options.peft_target "fused" adapts
`attn.qkv` whole instead). The classifier head always trains. The GLUE suite's methods on transformers models
(text_methods.py) reuse these builders. Names and descriptions: catalog.py (plain data).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_vision.qkv import QKV_NAME, split_qkv

from .catalog import DESCRIPTIONS, MethodOptions, check_methods

# Dotted suffixes PEFT targets on a timm ViT, per options.peft_target (catalog.PEFT_TARGETS).
PEFT_TARGETS = {"qv": ["attn.qkv.q", "attn.qkv.v"], "fused": ["attn.qkv"]}

__all__ = ["DESCRIPTIONS", "METHODS", "MethodOptions", "PEFT_TARGETS", "auto_scales", "build", "check_methods",
           "head_names", "is_peft", "parameter_counts", "peft_targets", "save_adapter", "split_for_peft"]


def _front_end(model: nn.Module):
    """neat_text for transformers models (they have config.model_type), else neat_vision (timm)."""
    return neat_text if neat_text.model_type(model) is not None else neat_vision


def head_names(model: nn.Module) -> list[str]:
    """The classifier head modules (transformers `classifier` / `score`, timm `get_classifier()`)."""
    return _front_end(model).head_names(model)


def _neat(model: nn.Module, opts: MethodOptions) -> nn.Module:
    where = {"targets": list(opts.targets)} if opts.targets else {"preset": opts.preset}
    return _front_end(model).patch(model, rank=opts.rank, depth=opts.depth, activation=opts.activation,
                                   scale=opts.scale, **where)


def peft_targets(opts: MethodOptions) -> list[str]:
    """The modules a PEFT baseline adapts on a timm ViT: options.targets if given, else q and v of the split
    attn.qkv (peft_target "qv") or attn.qkv whole ("fused")."""
    if opts.targets:
        return list(opts.targets)
    if opts.peft_target not in PEFT_TARGETS:
        raise ValueError(f"Unknown peft_target {opts.peft_target!r}; choose from {', '.join(PEFT_TARGETS)}.")
    return PEFT_TARGETS[opts.peft_target]


def split_for_peft(model: nn.Module, targets: list[str] | str) -> nn.Module:
    """`model` with timm's fused attn.qkv split into q, k, v linears (neat_vision.qkv, the same outputs) when a
    target names one of them ("attn.qkv.q"), so PEFT can adapt them; `model` unchanged otherwise. Also what a
    PEFT adapter saved with such targets needs before it loads (`targets`: its target_modules, a list or a
    pattern)."""
    if any(t.startswith(f"attn.{QKV_NAME}.") for t in ([targets] if isinstance(targets, str) else targets)):
        split_qkv(model)
    return model


def _peft(make_config: Callable[[MethodOptions, list[str], list[str]], object]
          ) -> Callable[[nn.Module, MethodOptions], nn.Module]:
    """A builder wrapping the model with PEFT; the head is trained and saved through `modules_to_save`."""
    def build(model: nn.Module, opts: MethodOptions) -> nn.Module:
        from peft import get_peft_model

        targets = peft_targets(opts)
        return get_peft_model(split_for_peft(model, targets), make_config(opts, targets, head_names(model)))
    return build


def _lora_config(opts: MethodOptions, targets: list[str], heads: list[str], dora: bool = False):
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=targets, modules_to_save=heads, use_dora=dora)


def _dora_config(opts: MethodOptions, targets: list[str], heads: list[str]):
    return _lora_config(opts, targets, heads, dora=True)


def _fourierft_config(opts: MethodOptions, targets: list[str], heads: list[str]):
    from peft import FourierFTConfig

    return FourierFTConfig(n_frequency=opts.n_frequency, scaling=opts.fourier_scaling,
                           target_modules=targets, modules_to_save=heads)


def _peanut_config(opts: MethodOptions, targets: list[str], heads: list[str]):
    from peft import PeanutConfig
    from transformers.activations import ACT2FN

    if not isinstance(opts.scale, (int, float)):
        raise ValueError(f"PEFT's peanut takes one numeric scaling per config, got scale={opts.scale!r}; "
                         "scale='auto' is NEAT's (method neat).")
    if opts.activation not in ACT2FN:
        raise ValueError(f"PEFT's peanut has no activation {opts.activation!r}; choose one of "
                         f"{', '.join(sorted(ACT2FN))}.")
    # PEFT counts encoder/decoder pairs; our depth counts weight matrices (2 = A, B).
    return PeanutConfig(r=opts.rank, depth=(opts.depth - 2) // 2, act_fn=opts.activation, scaling=opts.scale,
                        target_modules=targets, modules_to_save=heads)


def _vera_config(opts: MethodOptions, targets: list[str], heads: list[str]):
    from peft import VeraConfig

    return VeraConfig(r=opts.vera_r, target_modules=targets, modules_to_save=heads)


def _head(model: nn.Module, opts: MethodOptions) -> nn.Module:
    model.requires_grad_(False)
    for name in head_names(model):
        model.get_submodule(name).requires_grad_(True)
    return model


def _full(model: nn.Module, opts: MethodOptions) -> nn.Module:
    return model.requires_grad_(True)


METHODS: dict[str, Callable[[nn.Module, MethodOptions], nn.Module]] = {
    "neat": _neat,
    "lora": _peft(_lora_config),
    "dora": _peft(_dora_config),
    "fourierft": _peft(_fourierft_config),
    "peanut": _peft(_peanut_config),
    "vera": _peft(_vera_config),
    "head": _head,
    "full": _full,
}
Registry = dict[str, Callable[[nn.Module, MethodOptions], nn.Module]]


def build(name: str, model: nn.Module, options: MethodOptions = MethodOptions(), registry: Registry = METHODS
          ) -> nn.Module:
    """The model to train for method `name` of `registry`: only the method's parameters and the head need
    gradients."""
    check_methods([name], registry)
    return registry[name](model, options)


def is_head_parameter(name: str, heads: list[str]) -> bool:
    """Whether parameter `name` belongs to a classifier head (also inside PEFT's wrappers of it)."""
    dotted = "." + name
    return any(f".{head}." in dotted for head in heads)


def parameter_counts(model: nn.Module, heads: list[str]) -> dict[str, int]:
    """Trainable parameters: in all, in the classifier head, and elsewhere (the method's own)."""
    trainable = [(n, p.numel()) for n, p in model.named_parameters() if p.requires_grad]
    head = sum(k for n, k in trainable if is_head_parameter(n, heads))
    total = sum(k for _, k in trainable)
    return {"trainable_params": total, "head_params": head, "method_params": total - head}


def auto_scales(model: nn.Module) -> dict:
    """{"auto_scales": {"min", "mean", "max", "count"}} of the per-slice scales a NEAT model with scale="auto"
    computed from its weights ({} for any other model): what s came out as on this backbone."""
    found = [layer.neat[name].scales.float() for _, layer in neat_core.neat_layers(model) for name in layer.neat
             if layer.neat[name].scales is not None]
    if not found:
        return {}
    values = torch.cat(found)
    return {"auto_scales": {"min": values.min().item(), "mean": values.mean().item(), "max": values.max().item(),
                            "count": values.numel()}}


def is_peft(model: nn.Module) -> bool:
    """Whether `model` is a PEFT model (it saves its adapter with save_pretrained)."""
    return hasattr(model, "peft_config") and hasattr(model, "save_pretrained")


def save_adapter(name: str, model: nn.Module, path: str | Path) -> Path:
    """Write the trained adapter and head: NEAT with neat_core.save_adapter, PEFT with save_pretrained."""
    path = Path(path)
    if neat_core.adapter_configs(model):
        return neat_core.save_adapter(model, path)
    if is_peft(model):
        model.save_pretrained(str(path))
        return path
    raise ValueError(f"Method {name!r} has no adapter to save (it trains {DESCRIPTIONS.get(name, name)}).")
