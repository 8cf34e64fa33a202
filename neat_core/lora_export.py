"""`to_lora`: a NEAT adapter written as a standard PEFT LoRA folder, exactly (no approximation).

For a frozen base weight every NEAT update is a low-rank product. Per adapted slice s of a layer
(`NeatLinear._factors`, computed in fp32 or wider from the ORIGINAL weight, also when the model is merged):

    dW_s^T = scale_s * P_s Q_s      P_s: in x r,  Q_s: r x D      (D = out / num_blocks; scale_s = the config's
                                    number, or with scale="auto" the slice's stored value)

so the layer is a LoRA layer of rank S*r (S adapted slices; S = 1 for a whole layer), in PEFT's layout
(peft/tuners/lora/layer.py, checked against peft 0.21.2: y = base(x) + lora_B(lora_A(x)) * lora_alpha / r):

    lora_A.weight (S*r x in)  = [P_1^T; ...; P_S^T]
    lora_B.weight (out x S*r) = block b_k of rows, columns k*r..(k+1)*r: scale_k * Q_k^T; zero elsewhere
    lora_alpha = r                          (PEFT's and vLLM's scaling lora_alpha / r = 1)

Both shapes are the same for Hugging Face `Conv1D` (PEFT reads in/out from its nx x nf weight and applies
lora_A/lora_B to x as for nn.Linear); the config then sets `fan_in_fan_out`, which PEFT needs to merge.
Layers of different rank (q,v slices of a fused qkv next to whole MLP layers) get `rank_pattern` and an equal
`alpha_pattern`, so every layer keeps scaling 1; `r` is the largest rank, the one a server's rank limit must
allow. Keys: `base_model.model.<module>.lora_{A,B}.weight`; heads in `modules_to_save` as
`base_model.model.<head>.<param>` (PEFT's `save_pretrained` layout).

`adapter_config.json` holds only LoraConfig fields (PEFT warns about unknown keys, and servers read it), so
the NEAT provenance - "exported_from", the library version and the NEAT config - is written as metadata in
the safetensors header and in `neat_export.json` beside it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from .inject import active_adapter, adapter_configs, neat_layers
from .io import CONFIG_NAME, WEIGHTS_NAME, atomic_write, base_model_name, library_version, with_trained_modules
from .layer import NeatLinear
from .per_sample import NO_ADAPTER
from .peft_view import (PEFT_PREFIX, inside_saved, parameter_entries, peft_header, peft_module_names,
                        peft_modules_to_save, peft_targets, saved_tensors)

EXPORT_INFO_NAME = "neat_export.json"
EXPORTED_FROM = "neat-peft"


# --- the maths -------------------------------------------------------------------------------------
def lora_factors(layer: NeatLinear, adapter: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(lora_A (S*r x in), lora_B (out x S*r)) with lora_B @ lora_A = the adapter's scale * dW (torch layout),
    computed in fp32 (or the weight's dtype, if wider) from the unmerged base weight."""
    weight = layer.reference_weight()
    spec = layer.settings[adapter]
    with torch.no_grad():
        p, q = layer._factors(adapter, weight)  # (S, in, r), (S, r, D)
        q = q * layer.scale_factor(adapter, q)   # each slice's s
        num, _, rank = p.shape
        lora_a = p.transpose(1, 2).reshape(num * rank, layer.in_features)
        rows = layer.out_features // spec.slices.num_blocks
        lora_b = weight.new_zeros(spec.slices.num_blocks, rows, num * rank)
        for k, block in enumerate(spec.slices.blocks):
            lora_b[block, :, k * rank:(k + 1) * rank] = q[k].t()
    return lora_a, lora_b.reshape(layer.out_features, num * rank)


# --- how PEFT will read the config (peft 0.21.2) ------------------------------------------------------
def _pattern_value(pattern: dict[str, int], name: str, default: int) -> int:
    """The value PEFT's `rank_pattern` / `alpha_pattern` give module `name` (peft.utils.other.get_pattern_key)."""
    for key in pattern:
        if re.match(rf"(.*\.)?({key})$", name):
            return pattern[key]
    return default


def _target_modules(names: list[str], adapted: list[str], heads: list[str]) -> list[str]:
    """Short names (`q_proj`) when PEFT selects exactly the adapted layers with them - the form LoRA servers
    know - else the exact module names."""
    short = sorted({n.rpartition(".")[2] for n in adapted})
    found = peft_targets(names, [short, sorted(adapted)], adapted, heads)
    if found is not None:
        return found
    inside = [n for n in adapted if inside_saved(n, heads)]
    raise ValueError(f"PEFT cannot put LoRA on {inside[0] if inside else adapted[0]}: it lies inside a module of "
                     f"modules_to_save ({', '.join(heads)}), which PEFT trains whole. Export an adapter whose "
                     "targets and modules_to_save do not overlap.")


def _rank_pattern(ranks: dict[str, int]) -> tuple[int, dict[str, int]]:
    """(r, rank_pattern): r is the largest rank; modules of another rank are named by their short name (`fc1`)
    where all adapted modules of that short name share the rank, else by their escaped full name."""
    top = max(ranks.values())
    by_short: dict[str, set[int]] = {}
    for name, rank in ranks.items():
        by_short.setdefault(name.rpartition(".")[2], set()).add(rank)
    pattern = {}
    for name, rank in ranks.items():
        short = name.rpartition(".")[2]
        if rank != top:
            pattern[short if by_short[short] == {rank} else re.escape(name)] = rank
    if any(_pattern_value(pattern, n, top) != k for n, k in ranks.items()):  # a short name matching another module
        pattern = {re.escape(n): k for n, k in ranks.items() if k != top}
    return top, pattern


# --- the export ------------------------------------------------------------------------------------
def _adapter_to_export(model: nn.Module, adapter: str | None) -> str:
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_lora exports an adapter of an nn.Module, got {type(model).__name__}.")
    configs = adapter_configs(model)
    if not any(True for _ in neat_layers(model)):
        raise ValueError(f"This {type(model).__name__} has no NEAT layers, so there is no NEAT adapter to export; "
                         "to_lora reads models patched by neat_core.inject, neat_vision.patch or neat_text.patch.")
    if not configs:
        raise ValueError("This model has NEAT layers but no NEAT adapter (all were deleted); add one with "
                         "neat_core.inject or neat_core.load_adapter before exporting.")
    adapter = adapter or active_adapter(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r} to export; this model has {sorted(configs)}.")
    return adapter


def _combined_factors(model: nn.Module, weights: Mapping[str, float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per NEAT layer that any adapter in `weights` adapts: (lora_A, lora_B) with lora_B @ lora_A = sum_i w_i dW_i,
    the adapters' factors side by side (rank sum_i r_i; B_i scaled by w_i), as PEFT's
    add_weighted_adapter(..., combination_type="cat") stacks LoRA factors."""
    found = {}
    for name, layer in neat_layers(model):
        parts = [(lora_factors(layer, adapter), w) for adapter, w in weights.items() if adapter in layer.neat]
        if parts:
            found[name] = (torch.cat([a for (a, _), _ in parts]),
                           torch.cat([b if w == 1 else b * w for (_, b), w in parts], dim=1))
    return found


def _write_lora(model: nn.Module, out_dir: str | os.PathLike, weights: Mapping[str, float], head_from: str | None,
                base_model_name_or_path: str | None, info: dict[str, Any]) -> Path:
    """The LoRA folder of sum_i w_i dW_i with `head_from`'s trained modules (None: the model's own heads)."""
    config = with_trained_modules(model, head_from) if head_from is not None else None
    entries = list(config.modules_to_save) if config is not None else []
    params = parameter_entries(model, config) if config is not None else []
    if params:
        raise ValueError(f"PEFT's LoRA cannot carry the trained parameter {params[0]} (PEFT's modules_to_save names "
                         "modules, not parameters): freeze it, or keep the adapter in neat_core format "
                         "(neat_core.save_adapter).")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; to_lora writes a folder: give a new or existing folder path.")
    factors = _combined_factors(model, weights)
    saved = peft_modules_to_save(model, entries)
    targets = _target_modules(peft_module_names(model), list(factors), saved)
    tensors = {}
    for name, (lora_a, lora_b) in factors.items():
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = lora_a
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = lora_b
    tensors.update(saved_tensors(model, saved, head_from or NO_ADAPTER))
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    rank, pattern = _rank_pattern({name: a.shape[0] for name, (a, _) in factors.items()})
    lora_config = {
        **peft_header("LORA", model, saved, base_model_name_or_path), "r": rank, "lora_alpha": rank,
        "rank_pattern": pattern, "alpha_pattern": pattern, "use_rslora": False, "lora_dropout": 0.0, "bias": "none",
        "use_dora": False, "target_modules": targets, "exclude_modules": None, "layers_to_transform": None,
        "layers_pattern": None,
        "fan_in_fan_out": any(layer.fan_in_fan_out for name, layer in neat_layers(model) if name in factors),
        "init_lora_weights": True,
    }
    info = {"exported_from": EXPORTED_FROM, "library_version": library_version(), **info,
            "base_model": base_model_name(model), "model_class": type(model).__name__, "lora_rank": rank}
    metadata = {"format": "pt", "exported_from": EXPORTED_FROM, "library_version": library_version(),
                **{k: json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for k, v in info.items()
                   if k in ("neat_config", "neat_configs", "adapters")}}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    atomic_write(folder / EXPORT_INFO_NAME, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(lora_config, indent=2) + "\n"))
    return folder


def to_lora(model: nn.Module, out_dir: str | os.PathLike, adapter: str | None = None,
            base_model_name_or_path: str | None = None) -> Path:
    """Write NEAT adapter `adapter` (default: the active one) as a PEFT LoRA folder (`adapter_config.json` +
    `adapter_model.safetensors`; the head, and any other module that trains, in `modules_to_save`) that
    `peft.PeftModel.from_pretrained(base, out_dir)`, `peft.AutoPeftModelFor...`, transformers'
    `model.load_adapter(out_dir)` and LoRA servers load, with the NEAT model's outputs. The config names the
    base (`base_model_name_or_path`: the model's own name or path unless given) and PEFT's `task_type` for a
    transformers model. The exported rank of a layer is S*r (S adapted slices). A trained parameter outside any
    module (PEFT cannot carry it) is refused.

    Works on a merged model too (the factors come from the original weight). Everything is computed and
    checked before anything is written; each file is replaced atomically, the config last.
    """
    adapter = _adapter_to_export(model, adapter)
    config = with_trained_modules(model, adapter)  # a head built after patching is exported too
    return _write_lora(model, out_dir, {adapter: 1.0}, adapter, base_model_name_or_path,
                       {"adapter": adapter, "neat_config": config.to_dict()})


def weighted_to_lora(model: nn.Module, out_dir: str | os.PathLike, weights: Mapping[str, float],
                     head_from: str | None = None, base_model_name_or_path: str | None = None) -> Path:
    """Write the weighted sum of several NEAT adapters as one PEFT LoRA folder, exactly: every layer gets
    W + sum_i weights[i] * dW_i, a LoRA of rank sum_i r_i (the adapters' factors side by side; PEFT's
    `add_weighted_adapter(..., combination_type="cat")` in one step).

    A LoRA folder carries one set of trained modules: when adapters of `weights` train their own head
    (modules_to_save), name the adapter whose head to export with `head_from=`; otherwise the model's own heads go
    with the folder as PEFT's task model expects them. Checked before anything is written, like `to_lora`.
    """
    _adapter_to_export(model, None)
    configs = adapter_configs(model)
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"weights maps adapter names to their weights (e.g. {{'a': 0.5, 'b': 0.5}}), got {weights!r}.")
    unknown = sorted(set(weights) - set(configs))
    if unknown:
        raise ValueError(f"No adapter named {unknown[0]!r} to combine; this model has {sorted(configs)}.")
    bad = [(a, w) for a, w in weights.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)]
    if bad:
        raise ValueError(f"The weight of adapter {bad[0][0]!r} must be a finite number, got {bad[0][1]!r}.")
    if head_from is not None and head_from not in configs:
        raise ValueError(f"head_from={head_from!r} names no adapter of this model; it has {sorted(configs)}.")
    with_heads = [a for a in weights if with_trained_modules(model, a).modules_to_save]
    if head_from is None and with_heads:
        raise ValueError(f"Adapter(s) {', '.join(map(repr, with_heads))} train their own head (modules_to_save); a "
                         "LoRA folder carries one: pass head_from='<adapter>' to export that adapter's head with the "
                         "combined update.")
    info = {"adapters": {a: float(w) for a, w in weights.items()}, "head_from": head_from,
            "neat_configs": {a: configs[a].to_dict() for a in weights}}
    return _write_lora(model, out_dir, {a: float(w) for a, w in weights.items()}, head_from,
                       base_model_name_or_path, info)
