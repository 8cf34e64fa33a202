"""Every fine-tuning method of the benchmarks, built in one place.

`build(name, model, options)` takes a timm classifier (with its fresh head) and returns the model to train:
NEAT through `neat_vision.patch` (q and v slices of attn.qkv by default), the baselines through PEFT.
PEFT cannot adapt only the q and v rows of timm's fused `attn.qkv`, so the PEFT baselines adapt `attn.qkv`
whole; their parameter counts in the results reflect that. The classifier head always trains.
The GLUE suite's methods on transformers models (text_methods.py) reuse these builders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

import neat_core
import neat_text
import neat_vision

PEFT_TARGETS = ["attn.qkv"]  # dotted suffix: every block's fused q/k/v projection


@dataclass(frozen=True)
class MethodOptions:
    """Hyper-parameters of the methods (defaults: the paper's settings)."""

    preset: str = "qv"            # neat: which layers (neat_vision presets)
    targets: tuple[str, ...] = () # layers to adapt instead (neat: replaces the preset; PEFT: replaces attn.qkv)
    rank: int = 7                 # neat and peanut
    depth: int = 2                # neat and peanut, counted as the paper does (2 = A, B)
    activation: str = "relu"      # neat and peanut
    scale: float = 1.0            # neat and peanut
    lora_r: int = 16              # lora and dora
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    n_frequency: int = 3000       # fourierft
    fourier_scaling: float = 300.0
    vera_r: int = 256             # vera


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


def _peft_targets(opts: MethodOptions) -> list[str]:
    return list(opts.targets) or PEFT_TARGETS


def _peft(make_config: Callable[[MethodOptions, list[str]], object]) -> Callable[[nn.Module, MethodOptions], nn.Module]:
    """A builder wrapping the model with PEFT; the head is trained and saved through `modules_to_save`."""
    def build(model: nn.Module, opts: MethodOptions) -> nn.Module:
        from peft import get_peft_model

        return get_peft_model(model, make_config(opts, head_names(model)))
    return build


def _lora_config(opts: MethodOptions, heads: list[str], dora: bool = False):
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules=_peft_targets(opts), modules_to_save=heads, use_dora=dora)


def _dora_config(opts: MethodOptions, heads: list[str]):
    return _lora_config(opts, heads, dora=True)


def _fourierft_config(opts: MethodOptions, heads: list[str]):
    from peft import FourierFTConfig

    return FourierFTConfig(n_frequency=opts.n_frequency, scaling=opts.fourier_scaling,
                           target_modules=_peft_targets(opts), modules_to_save=heads)


def _peanut_config(opts: MethodOptions, heads: list[str]):
    from peft import PeanutConfig
    from transformers.activations import ACT2FN

    if opts.activation not in ACT2FN:
        raise ValueError(f"PEFT's peanut has no activation {opts.activation!r}; choose one of "
                         f"{', '.join(sorted(ACT2FN))}.")
    # PEFT counts encoder/decoder pairs; our depth counts weight matrices (2 = A, B).
    return PeanutConfig(r=opts.rank, depth=(opts.depth - 2) // 2, act_fn=opts.activation, scaling=opts.scale,
                        target_modules=_peft_targets(opts), modules_to_save=heads)


def _vera_config(opts: MethodOptions, heads: list[str]):
    from peft import VeraConfig

    return VeraConfig(r=opts.vera_r, target_modules=_peft_targets(opts), modules_to_save=heads)


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
DESCRIPTIONS = {
    "neat": "NEAT (ours), neat_vision preset (default q,v of attn.qkv)",
    "lora": "LoRA (PEFT) on attn.qkv whole", "dora": "DoRA (PEFT) on attn.qkv whole",
    "fourierft": "FourierFT (PEFT) on attn.qkv whole", "peanut": "PEANuT (PEFT's NEAT) on attn.qkv whole",
    "vera": "VeRA (PEFT) on attn.qkv whole", "head": "linear probe (head only)", "full": "full fine-tuning",
}


Registry = dict[str, Callable[[nn.Module, MethodOptions], nn.Module]]


def check_methods(names: list[str], registry: Registry = METHODS) -> list[str]:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"Unknown method(s) {', '.join(unknown)}; choose from {', '.join(registry)}.")
    return names


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


def save_adapter(name: str, model: nn.Module, path: str | Path) -> Path:
    """Write the trained adapter and head: NEAT with neat_core.save_adapter, PEFT with save_pretrained."""
    path = Path(path)
    if neat_core.adapter_configs(model):
        return neat_core.save_adapter(model, path)
    if hasattr(model, "save_pretrained") and hasattr(model, "peft_config"):
        model.save_pretrained(str(path))
        return path
    raise ValueError(f"Method {name!r} has no adapter to save (it trains {DESCRIPTIONS.get(name, name)}).")
