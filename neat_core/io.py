"""Saving and loading adapters: `adapter_config.json` + `adapter_model.safetensors` (never pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import NeatConfig
from .inject import active_adapter, adapter_configs, inject, neat_layers, plan_injection
from .layer import layer_features, network_shapes

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1


def library_version() -> str:
    from . import __version__

    return __version__


def base_model_name(model: nn.Module) -> str | None:
    """The base model's name when the model says it: HF `name_or_path`, timm `pretrained_cfg`."""
    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    if name:
        return str(name)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict) and cfg.get("architecture"):
        return ".".join(p for p in (cfg["architecture"], cfg.get("tag")) if p)
    return None


def _adapter_tensors(model: nn.Module, adapter: str, config: NeatConfig) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, layer in neat_layers(model):
        if adapter in layer.neat:
            for pname, param in layer.neat[adapter].named_parameters():
                tensors[f"{name}.neat.{pname}"] = param
    for module_name in config.modules_to_save:
        for pname, param in model.get_submodule(module_name).named_parameters():
            tensors[f"{module_name}.{pname}"] = param
    return tensors


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`: readers and a killed run
    never see half a file. The file gets the usual rw-r--r-- mode (mkstemp alone makes it owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_adapter(model: nn.Module, path: str | os.PathLike, adapter: str | None = None) -> Path:
    """Write `adapter` (default: the active one) and the trained head to folder `path`."""
    configs = adapter_configs(model)
    adapter = adapter or active_adapter(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r} to save; this model has {sorted(configs) or 'none'}.")
    if any(layer.merged_adapter for _, layer in neat_layers(model)):
        raise ValueError("The adapter is merged into the weights; call neat_core.unmerge(model) before saving.")
    config = configs[adapter]
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in _adapter_tensors(model, adapter, config).items()}
    meta = {"config": config.to_dict(), "base_model": base_model_name(model), "model_class": type(model).__name__,
            "library": "neat-peft", "library_version": library_version(), "format_version": FORMAT_VERSION}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def read_adapter(path: str | os.PathLike) -> tuple[dict[str, Any], NeatConfig, dict[str, torch.Tensor]]:
    """Read and check an adapter folder: (metadata, config, tensors). Raises a clear error on bad files."""
    folder = Path(path)
    hint = f"expected a folder written by neat_core.save_adapter ({CONFIG_NAME} + {WEIGHTS_NAME})"
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {folder}: {hint}.")
    if not weights_file.is_file():
        raise FileNotFoundError(f"No {WEIGHTS_NAME} in {folder}: {hint}.")
    try:
        meta = json.loads(config_file.read_text())
        config = NeatConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config_file} is not a valid NEAT adapter config ({err}); {hint}.") from None
    return meta, config, read_safetensors(weights_file)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or one clear error when it is truncated or not safetensors."""
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err}); it may be truncated or "
                         "corrupt: save or download the adapter again.") from None


def _expected_shapes(model: nn.Module, config: NeatConfig, adapter: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape that `config` gives on `model` (whether or not it is injected yet)."""
    shapes = {}
    if adapter in adapter_configs(model):
        for name, param in _adapter_tensors(model, adapter, config).items():
            shapes[name] = tuple(param.shape)
        return shapes
    for name, spec in plan_injection(model, config).items():
        module = model.get_submodule(name)
        for pname, shape in network_shapes(*layer_features(module), config, spec).items():
            shapes[f"{name}.neat.{pname}"] = shape
    for module_name in config.modules_to_save:
        for pname, param in model.get_submodule(module_name).named_parameters():
            shapes[f"{module_name}.{pname}"] = tuple(param.shape)
    return shapes


def _mismatches(expected: dict[str, tuple[int, ...]], tensors: dict[str, torch.Tensor]) -> list[str]:
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k}: file has {tuple(tensors[k].shape)}, model needs {shape}"
                 for k, shape in expected.items() if k in tensors and tuple(tensors[k].shape) != shape]
    return problems


def load_adapter(model: nn.Module, path: str | os.PathLike, adapter: str = "default",
                 revision: str | None = None) -> nn.Module:
    """Load an adapter folder, or a Hub repo id ("owner/name" at `revision`; see neat_core.hub), into `model`
    as `adapter` (injecting it if the model does not have it yet).

    Config and every tensor shape are checked before anything changes; on a mismatch a ValueError explains
    it and the model is left as it was.
    """
    from .hub import resolve_adapter  # hub imports this module

    meta, config, tensors = read_adapter(resolve_adapter(path, revision))
    saved_for = meta.get("base_model") or meta.get("model_class") or "another model"
    return load_tensors(model, config, tensors, adapter, origin=str(path), saved_for=saved_for)


def load_tensors(model: nn.Module, config: NeatConfig, tensors: dict[str, torch.Tensor], adapter: str = "default",
                 origin: str = "the given tensors", saved_for: str = "another model") -> nn.Module:
    """Load `tensors` (keys as `save_adapter` writes them) for `config` into `model` as `adapter`, checking the
    config and every shape first; on a mismatch a ValueError explains it and the model is left as it was."""
    existing = adapter_configs(model).get(adapter)
    if existing is not None and existing.structure() != config.structure():
        raise ValueError(f"Adapter {adapter!r} on this model has a different config than {origin}; load it "
                         "under another name (adapter=...) or delete the existing one first.")
    try:
        expected = _expected_shapes(model, config, adapter)
    except ValueError as err:
        raise ValueError(f"The adapter at {origin} (saved for {saved_for}) does not fit this "
                         f"{type(model).__name__}: {err}") from None
    problems = _mismatches(expected, tensors)
    if problems:
        raise ValueError(f"The adapter at {origin} (saved for {saved_for}) does not fit this "
                         f"{type(model).__name__}: {'; '.join(problems[:5])}"
                         f"{f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''}.")
    if existing is None:
        inject(model, config, adapter)
    targets = _adapter_tensors(model, adapter, config)
    with torch.no_grad():
        for name, tensor in tensors.items():
            targets[name].copy_(tensor)
    return model


# PEFT PEANuT import/export lives in its own module; it is part of this module's public surface.
from .peft_compat import from_peft, to_peft  # noqa: E402  (peft_compat imports the names above)
