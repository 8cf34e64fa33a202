"""Two-way conversion between NEAT adapters and PEFT's PEANuT adapter folders, without importing peft.

PEFT's PEANuT (peft/tuners/peanut, checked against peft 0.21.2) is the same method, stored differently:

    ours                         PEFT (keys in adapter_model.safetensors, prefix "base_model.model.")
    <name>.neat.A      (1,out,r) <name>.peanut_A.weight           (r,out)   nn.Linear(out, r)
    <name>.neat.encoders.i       <name>.peanut_encoders.i.weight  (r,r)     transposed
    <name>.neat.decoders.i       <name>.peanut_decoders.i.weight  (r,r)     transposed
    <name>.neat.B      (1,r,out) <name>.peanut_B.weight           (out,r)   nn.Linear(r, out)
    <head>.<param>               <head>.<param>                   modules_to_save, unchanged

- depth: PEFT's `depth` counts encoder/decoder *pairs* (0 = A, B; 1 = A, e1, d1, B); ours counts weight
  matrices, so ours = 2 * PEFT + 2 (docs/ARCHITECTURE.md).
- orientation: PEFT computes act(W^T A^T) ... B^T, i.e. it reads rows of W^T (length out_features) = our "out".
- activation: PEFT's `act_fn` is a transformers ACT2FN key; only keys computing exactly our function are mapped
  (relu, gelu = erf GELU, silu/swish, tanh, linear = our identity).
- residuals: both add the mirrored encoder input after each decoder's activation; scaling multiplies dW.
- scale="auto": PEFT has one `scaling` per config, ours is one s per layer, so the export folds each layer's s
  into its B (peanut_B = s * B^T) and writes scaling 1.0: the same outputs (up to float rounding). Read back with
  from_peft it is a scale-1.0 adapter with those B's (the same function; training it further would move B at
  the scale-1.0 pace).
PEFT adapts whole nn.Linear layers only: fused-output slices, Conv1D, orientation "in" and "sin" are refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .config import AUTO_SCALE, NeatConfig
from .inject import _REGEX_CHARS, active_adapter, adapter_configs, neat_layers, plan_injection
from .io import (CONFIG_NAME, WEIGHTS_NAME, atomic_write, load_tensors, read_safetensors,
                 with_trained_modules)
from .layer import NeatLinear
from .peft_view import (PEFT_PREFIX, parameter_entries, peft_header, peft_module_names, peft_modules_to_save,
                        peft_saved_modules, peft_targets, saved_tensors)

TO_PEFT_ACTIVATION = {"relu": "relu", "gelu": "gelu", "silu": "silu", "tanh": "tanh", "identity": "linear"}
FROM_PEFT_ACTIVATION = {"relu": "relu", "gelu": "gelu", "silu": "silu", "swish": "silu", "tanh": "tanh",
                        "linear": "identity"}
_PEANUT_KEY = re.compile(r"(?P<module>.+)\.peanut_(?P<part>A|B|encoders\.\d+|decoders\.\d+)\.weight")


def peft_depth(depth: int) -> int:
    """PEFT's depth (hidden pairs) for our depth (weight matrices)."""
    return (depth - 2) // 2


def peft_scaling(config: NeatConfig) -> float:
    """PEFT's `scaling` for our config: s itself, or 1.0 for scale="auto" (each layer's s is folded into its B)."""
    return 1.0 if config.scale == AUTO_SCALE else float(config.scale)


# --- export -----------------------------------------------------------------------------------------
def _inexpressible(model: nn.Module, config: NeatConfig, layers: dict[str, NeatLinear], adapter: str) -> list[str]:
    problems = []
    if config.orientation != "out":
        problems.append(f"orientation={config.orientation!r} (PEFT's network reads the rows of W^T, i.e. "
                        "orientation 'out')")
    if config.activation not in TO_PEFT_ACTIVATION:
        problems.append(f"activation={config.activation!r} (no transformers ACT2FN key computes it; PEFT-compatible "
                        f"activations: {', '.join(TO_PEFT_ACTIVATION)})")
    sliced = [n for n, layer in layers.items() if not layer.settings[adapter].slices.whole]
    if sliced:
        problems.append(f"fused-output slices (slices= adapts only some row blocks of {sliced[0]}; PEFT adapts "
                        "whole layers)")
    conv = [n for n, layer in layers.items() if layer.fan_in_fan_out]
    if conv:
        problems.append(f"Conv1D layers ({conv[0]} is a Hugging Face Conv1D; PEFT's PEANuT supports nn.Linear only)")
    params = parameter_entries(model, config)
    if params:
        problems.append(f"a trained parameter outside any saved module ({params[0]}; PEFT's modules_to_save names "
                        "modules)")
    return problems


def _export_targets(model: nn.Module, targets: list[str], adapted: list[str], saved: list[str]) -> list[str]:
    """Our target patterns when PEFT reads them the same way, else the exact module names."""
    ours = [] if any(_REGEX_CHARS & set(t) for t in targets) else [targets]
    found = peft_targets(peft_module_names(model), [*ours, sorted(adapted)], adapted, saved)
    if found is None:
        raise ValueError(f"PEFT would not adapt every layer of this adapter: PEFT never adapts layers inside "
                         f"modules_to_save ({saved}); remove them from targets or modules_to_save.")
    return found


def _peft_tensors(model: nn.Module, layers: dict[str, NeatLinear], saved: list[str],
                  adapter: str) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, layer in layers.items():
        net, key = layer.neat[adapter], f"{PEFT_PREFIX}{name}.peanut_"
        tensors[f"{key}A.weight"] = net.A[0].t()
        for kind in ("encoders", "decoders"):
            for i, matrix in enumerate(getattr(net, kind)):
                tensors[f"{key}{kind}.{i}.weight"] = matrix[0].t()
        scale = 1.0 if net.scales is None else net.scales[0]   # scale="auto": s folded into B (module docstring)
        tensors[f"{key}B.weight"] = net.B[0].t() * scale
    tensors.update(saved_tensors(model, saved, adapter))
    return {k: v.detach().contiguous().cpu() for k, v in tensors.items()}


def to_peft(model: nn.Module, out_dir: str | os.PathLike, adapter: str | None = None,
            base_model_name_or_path: str | None = None) -> Path:
    """Write `adapter` (default: the active one) as a PEFT PEANuT folder that
    `peft.PeftModel.from_pretrained(base_model, out_dir)` loads (the config names the base and, for a transformers
    model, PEFT's task_type, as `to_lora` does). Refuses, writing nothing, what PEFT cannot express."""
    configs = adapter_configs(model)
    adapter = adapter or active_adapter(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r} to export; this model has {sorted(configs) or 'none'}.")
    layers = {n: layer for n, layer in neat_layers(model) if adapter in layer.neat}
    if any(layer.merged_adapter for layer in layers.values()):
        raise ValueError("The adapter is merged into the weights; call neat_core.unmerge(model) before to_peft.")
    config = with_trained_modules(model, adapter)  # a head built after patching is exported too
    problems = _inexpressible(model, config, layers, adapter)
    if problems:
        raise ValueError(f"PEFT's PEANuT cannot express adapter {adapter!r}: {'; '.join(problems)}. Keep it in "
                         "neat_core format (neat_core.save_adapter) or train with a PEFT-compatible config.")
    saved = peft_modules_to_save(model, config.modules_to_save)
    peft_config = {
        **peft_header("PEANUT", model, saved, base_model_name_or_path), "r": config.rank,
        "depth": peft_depth(config.depth),
        "act_fn": TO_PEFT_ACTIVATION[config.activation], "scaling": peft_scaling(config),
        "target_modules": _export_targets(model, list(config.targets), list(layers), saved),
        "exclude_modules": None, "layers_to_transform": None,
        "layers_pattern": None, "init_weights": True,
    }
    tensors = _peft_tensors(model, layers, saved, adapter)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(peft_config, indent=2) + "\n"))
    return folder


# --- import -----------------------------------------------------------------------------------------
def _read_peft_folder(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    hint = (f"expected a PEFT PEANuT adapter folder ({CONFIG_NAME} + {WEIGHTS_NAME}, as "
            "PeftModel.save_pretrained writes)")
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for file in (config_file, weights_file):
        if not file.is_file():
            raise FileNotFoundError(f"No {file.name} in {folder}: {hint}.")
    try:
        peft_config = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file} is not valid JSON ({err}); {hint}.") from None
    if not isinstance(peft_config, dict) or peft_config.get("peft_type") != "PEANUT":
        kind = peft_config.get("peft_type") if isinstance(peft_config, dict) else None
        raise ValueError(f"{config_file} describes a {kind or 'non-PEFT'} adapter; neat_core.from_peft reads PEFT "
                         "PEANuT adapters (peft_type 'PEANUT'). Use neat_core.load_adapter for NEAT folders.")
    tensors = read_safetensors(weights_file)
    foreign = [k for k in tensors if not k.startswith(PEFT_PREFIX)]
    if foreign:
        raise ValueError(f"{weights_file} has key {foreign[0]!r} without PEFT's prefix {PEFT_PREFIX!r}; {hint}.")
    return peft_config, {k[len(PEFT_PREFIX):]: v for k, v in tensors.items()}


def _neat_tensors(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split PEFT tensors into ours ({name}.neat.{param}, transposed, stacked S=1) and the rest (heads)."""
    ours, rest = {}, {}
    for key, tensor in tensors.items():
        match = _PEANUT_KEY.fullmatch(key)
        if match is None:
            rest[key] = tensor
        else:
            ours[f"{match['module']}.neat.{match['part']}"] = tensor.t().unsqueeze(0)
    return ours, rest


def _saved_modules(model: nn.Module, patterns: list[str], rest: dict[str, torch.Tensor]) -> list[str]:
    """Full names of the modules_to_save PEFT matched whose tensors the file has."""
    return peft_saved_modules(model, patterns, keep=lambda name, module: all(
        f"{name}.{p}" in rest for p, _ in module.named_parameters()))


def _import_targets(model: nn.Module, peft_config: dict, layer_names: list[str]) -> list[str]:
    """PEFT's target_modules when they select exactly the layers in the file here, else the exact names."""
    targets = peft_config.get("target_modules")
    candidates = [[targets] if isinstance(targets, str) else sorted(targets or []), sorted(layer_names)]
    for candidate in candidates:
        base = NeatConfig(targets=candidate)
        try:
            if candidate and set(plan_injection(model, base)) == set(layer_names):
                return candidate
        except ValueError:
            continue
    raise ValueError(f"The PEFT adapter's layers ({', '.join(layer_names[:3])}, ...) are not all linear layers of "
                     f"this {type(model).__name__}; load it into the model it was trained on.")


def from_peft(model: nn.Module, peft_dir: str | os.PathLike, adapter: str = "default", replace: bool = False
              ) -> nn.Module:
    """Load a PEFT PEANuT adapter folder into `model` (a plain transformers model, not a PeftModel) as NEAT
    adapter `adapter`. Everything is checked before the model changes; a mismatch raises a ValueError, and so
    does a name in use unless `replace=True` (as in `load_adapter`)."""
    folder = Path(peft_dir)
    peft_config, tensors = _read_peft_folder(folder)
    act_fn = peft_config.get("act_fn", "relu")
    if act_fn not in FROM_PEFT_ACTIVATION:
        raise ValueError(f"PEFT act_fn {act_fn!r} in {folder} has no exact NEAT activation; from_peft supports "
                         f"{', '.join(FROM_PEFT_ACTIVATION)}.")
    ours, rest = _neat_tensors(tensors)
    if not ours:
        raise ValueError(f"{folder / WEIGHTS_NAME} holds no peanut_A/peanut_B tensors; it is not a PEANuT adapter.")
    layer_names = sorted({k.rpartition(".neat.")[0] for k in ours})
    heads = _saved_modules(model, list(peft_config.get("modules_to_save") or []), rest)
    config = NeatConfig(rank=int(peft_config.get("r", 32)), depth=2 * int(peft_config.get("depth", 0)) + 2,
                        activation=FROM_PEFT_ACTIVATION[act_fn], scale=float(peft_config.get("scaling", 1.0)),
                        orientation="out", targets=_import_targets(model, peft_config, layer_names),
                        modules_to_save=heads)
    saved_for = peft_config.get("base_model_name_or_path") or "another model"
    return load_tensors(model, config, {**ours, **rest}, adapter, origin=str(folder), saved_for=saved_for,
                        replace=replace)
