"""Every fine-tuning method of the benchmarks, built in one place, on each kind of model (catalog.KINDS).

`build(name, model, options, kind)` returns the model to train: NEAT through the front ends' `patch` (the preset
the kind and method call for, or options.targets), the baselines through PEFT with their config from
`peft_config` (the one place PEFT configs are made), BitFit / head / full by freezing. Only the method's
parameters and the classifier head (image and text kinds) need gradients.

Where PEFT adapts (`peft_targets`): on a timm ViT q and v of the fused attn.qkv, split into q, k, v linears first
by `neat_vision.qkv` (options.peft_target "fused": attn.qkv whole), as the NEAT and FourierFT papers do; on a
transformers classifier its query and value projections (the LoRA paper's GLUE targets); on a causal LM the
targets the reasoning suite resolved (options.targets). options.targets always wins. The classifier head trains
and is saved through PEFT's `modules_to_save`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neat_core
import neat_text
import neat_vision
from neat_vision.qkv import QKV_NAME, split_qkv

from .catalog import PEFT_METHODS, PEFT_TARGETS, MethodOptions, check_methods, methods_for

# Dotted suffixes PEFT targets on a timm ViT, per options.peft_target (catalog.PEFT_TARGETS).
VIT_PEFT_TARGETS = {"qv": ["attn.qkv.q", "attn.qkv.v"], "fused": ["attn.qkv"]}
assert set(VIT_PEFT_TARGETS) == set(PEFT_TARGETS)
NEAT_PRESETS = {"neat-s": "neat_s", "neat-l": "neat_l"}   # GLUE's NEAT sizes: neat_text presets
LLM_ORIENTATION = "in"   # neat_text's paper_llm preset: the weight network reads rows of W (NEAT's LLM code)
TASK_TYPES = {"causal": "CAUSAL_LM"}                       # PEFT's task_type per kind (None elsewhere)


def front_end(model: nn.Module):
    """neat_text for transformers models (they have config.model_type), else neat_vision (timm)."""
    return neat_text if neat_text.model_type(model) is not None else neat_vision


def head_names(model: nn.Module, kind: str = "image") -> list[str]:
    """The classifier head modules (timm `get_classifier()`, transformers `classifier` / `score`); none on a
    causal LM (its output layer is part of the pretrained model)."""
    return [] if kind == "causal" else front_end(model).head_names(model)


# --- NEAT ---------------------------------------------------------------------------------------------------
def _neat(name: str, model: nn.Module, opts: MethodOptions, kind: str) -> nn.Module:
    preset = NEAT_PRESETS.get(name, "paper_llm" if kind == "causal" else opts.preset)
    fields = {"rank": opts.rank, "depth": opts.depth, "activation": opts.activation, "scale": opts.scale}
    targets = {"targets": list(opts.targets)} if opts.targets else {}
    if kind == "causal" and targets:   # the paper's LLM orientation on the targets every method shares
        return neat_text.patch(model, orientation=LLM_ORIENTATION, **fields, **targets)
    if kind == "causal":   # the paper's LLM preset: its targets for the model type, orientation 'in'
        return neat_text.patch(model, preset=preset, **fields)
    return front_end(model).patch(model, **fields, **(targets or {"preset": preset}))


# --- PEFT ---------------------------------------------------------------------------------------------------
def peft_targets(model: nn.Module, opts: MethodOptions, kind: str) -> list[str]:
    """The modules a PEFT baseline adapts (see the module docstring)."""
    if opts.targets:
        return list(opts.targets)
    if kind == "text":
        return list(neat_text.preset_fields(model, "qv")["targets"])
    if kind == "causal":
        return list(neat_text.preset_fields(model, "paper_llm")["targets"])
    if opts.peft_target not in VIT_PEFT_TARGETS:
        raise ValueError(f"Unknown peft_target {opts.peft_target!r}; choose from {', '.join(VIT_PEFT_TARGETS)}.")
    return VIT_PEFT_TARGETS[opts.peft_target]


def split_for_peft(model: nn.Module, targets: list[str] | str) -> nn.Module:
    """`model` with timm's fused attn.qkv split into q, k, v linears (neat_vision.qkv, the same outputs) when a
    target names one of them ("attn.qkv.q"), so PEFT can adapt them; `model` unchanged otherwise. Also what a
    PEFT adapter saved with such targets needs before it loads (`targets`: its target_modules, a list or a
    pattern)."""
    if any(t.startswith(f"attn.{QKV_NAME}.") for t in ([targets] if isinstance(targets, str) else targets)):
        split_qkv(model)
    return model


def peft_config(name: str, opts: MethodOptions, targets: list[str], heads: list[str], task_type: str | None):
    """The PEFT config of baseline `name` with these options, targets and trained heads."""
    import peft

    common = {"target_modules": targets, "task_type": task_type,
              **({"modules_to_save": heads} if heads else {})}
    if name in ("lora", "dora", "pissa", "milora"):
        return peft.LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                               use_dora=name == "dora", init_lora_weights="pissa" if name == "pissa" else True,
                               **common)
    if name == "fourierft":
        return peft.FourierFTConfig(n_frequency=opts.n_frequency, scaling=opts.fourier_scaling, **common)
    if name == "vera":
        return peft.VeraConfig(r=opts.vera_r, **common)
    if name == "peanut":
        from neat_core.peft_compat import TO_PEFT_ACTIVATION, peft_depth

        if not isinstance(opts.scale, (int, float)):
            raise ValueError(f"PEFT's peanut takes one numeric scaling per config, got scale={opts.scale!r}; "
                             "scale='auto' is NEAT's (method neat).")
        if opts.activation not in TO_PEFT_ACTIVATION:
            raise ValueError(f"PEFT's peanut has no activation {opts.activation!r}; choose one of "
                             f"{', '.join(TO_PEFT_ACTIVATION)}.")
        return peft.PeanutConfig(r=opts.rank, depth=peft_depth(opts.depth),
                                 act_fn=TO_PEFT_ACTIVATION[opts.activation], scaling=opts.scale, **common)
    raise ValueError(f"{name!r} is not a PEFT baseline.")


def _peft(name: str, model: nn.Module, opts: MethodOptions, kind: str) -> nn.Module:
    from peft import get_peft_model

    targets = peft_targets(model, opts, kind)
    heads = head_names(model, kind)
    built = get_peft_model(split_for_peft(model, targets), peft_config(name, opts, targets, heads, TASK_TYPES.get(kind)))
    if name == "milora":
        milora_init(built)
    return built


def minor_components(weight: torch.Tensor, rank: int, scaling: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MiLoRA's initialisation of one weight W (out x in, any float dtype; computed in fp32): with
    W = U S V^T and the `rank` smallest singular values S_r, A = sqrt(S_r / s) V_r^T (r x in),
    B = U_r sqrt(S_r / s) (out x r), so that s * B A = U_r S_r V_r^T; returns (A, B, W - s * B A)
    (sufenlp/MiLoRA svd_init.py)."""
    u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    root = torch.sqrt(s[-rank:] / scaling)
    lora_a = root[:, None] * vh[-rank:]
    lora_b = u[:, -rank:] * root[None, :]
    return lora_a, lora_b, weight.float() - scaling * lora_b @ lora_a


@torch.no_grad()
def milora_init(model: nn.Module, adapter: str = "default") -> int:
    """Re-initialise every PEFT LoRA layer of `adapter` from the minor singular components of its base weight and
    subtract that part from the weight, so the model's output is unchanged; returns the count."""
    from peft.tuners.lora import LoraLayer

    done = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            base = module.get_base_layer()
            lora_a, lora_b, residual = minor_components(base.weight, module.r[adapter], module.scaling[adapter])
            module.lora_A[adapter].weight.copy_(lora_a)
            module.lora_B[adapter].weight.copy_(lora_b)
            base.weight.copy_(residual.to(base.weight.dtype))
            done += 1
    return done


# --- freezing ---------------------------------------------------------------------------------------------
def _head(name: str, model: nn.Module, opts: MethodOptions, kind: str) -> nn.Module:
    model.requires_grad_(False)
    for head in head_names(model, kind):
        model.get_submodule(head).requires_grad_(True)
    return model


def _bitfit(name: str, model: nn.Module, opts: MethodOptions, kind: str) -> nn.Module:
    model = _head(name, model, opts, kind)
    for param_name, param in model.named_parameters():
        if param_name.endswith("bias"):
            param.requires_grad_(True)
    return model


def _full(name: str, model: nn.Module, opts: MethodOptions, kind: str) -> nn.Module:
    return model.requires_grad_(True)


Builder = Callable[[str, nn.Module, MethodOptions, str], nn.Module]
BUILDERS: dict[str, Builder] = {
    "neat": _neat, "neat-s": _neat, "neat-l": _neat,
    **{name: _peft for name in PEFT_METHODS},
    "bitfit": _bitfit, "head": _head, "full": _full,
}


def build(name: str, model: nn.Module, options: MethodOptions = MethodOptions(), kind: str = "image") -> nn.Module:
    """The model to train for method `name` on a model of `kind`: only the method's parameters and the head need
    gradients."""
    check_methods([name], methods_for(kind))
    return BUILDERS[name](name, model, options, kind)


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
    raise ValueError(f"Method {name!r} has no adapter to save (it trains its weights directly).")


def save_initial(method: str, model: nn.Module, folder: Path) -> Path | None:
    """PiSSA / MiLoRA: the adapter as initialised (before training), which PEFT needs to convert the trained one
    into a plain LoRA of the original base weights."""
    if method not in ("pissa", "milora"):
        return None
    path = folder / "initial"
    model.peft_config["default"].init_lora_weights = True  # as PEFT asks: loading it back must not re-run the SVD
    model.save_pretrained(str(path))
    return path


def save_trained(method: str, model: nn.Module, folder: Path, initial: Path | None,
                 state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Write the trained adapter under `folder`: NEAT in its own format and, where PEFT can express it, as a PEFT
    PEANuT folder too; the baselines as PEFT folders (PiSSA / MiLoRA converted to a LoRA of the original weights
    when `initial` is given). Returns the paths and, for what could not be written, why."""
    saved: dict[str, Any] = {}
    if neat_core.adapter_configs(model):
        saved["neat_adapter"] = str(neat_core.save_adapter(model, folder / "neat"))
        try:
            saved["peft_adapter"] = str(neat_core.to_peft(model, folder / "peft"))
        except ValueError as err:  # orientation 'in' (the paper's LLM setting) has no PEFT form
            saved["peft_adapter_unavailable"] = str(err)
        return saved
    kwargs: dict[str, Any] = {"state_dict": state_dict} if state_dict is not None else {}
    if initial is not None and state_dict is None:
        kwargs["path_initial_model_for_weight_conversion"] = str(initial)
        saved["converted_to_lora_of_the_original_weights"] = True
    elif initial is not None:
        saved["converted_to_lora_of_the_original_weights"] = False  # FSDP: the residual-form adapter only
    model.save_pretrained(str(folder / "peft"), **kwargs)
    saved["peft_adapter"] = str(folder / "peft")
    return saved
