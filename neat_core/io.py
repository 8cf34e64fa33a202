"""Saving and loading adapters: `adapter_config.json` + `adapter_model.safetensors` (never pickle).

A leaf of the package: it reads and writes NEAT folders; `remote` finds Hub repos in the cache or downloads them;
`peft_compat` (PEANuT) and `lora_export` (LoRA) write PEFT folders on top of this module, reading module names as
PEFT does through `peft_view`; `hub` uploads.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import NeatConfig
from .inject import (CONFIGS_ATTR, active_adapter, adapter_configs, delete_adapter, inject, neat_layers,
                     plan_injection, record_adapters_on_config, saved_parameters, set_adapter)
from .layer import layer_features, network_shapes
from .remote import download_adapter, is_repo_id

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1

# Front ends register how to describe the base a model was built from (e.g. timm create_model arguments that
# differ from the architecture's defaults): f(model) -> dict, or None when f does not know the model.
BaseModelArgs = Callable[[nn.Module], "dict[str, Any] | None"]
BASE_MODEL_ARGS: list[BaseModelArgs] = []


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


def register_base_model_args(describe: BaseModelArgs) -> None:
    """Let `save_adapter` record what `describe(model)` says is needed to rebuild the base (front ends call this)."""
    if describe not in BASE_MODEL_ARGS:
        BASE_MODEL_ARGS.append(describe)


def base_model_args(model: nn.Module) -> dict[str, Any] | None:
    """The first registered description of the model's base, or None."""
    for describe in BASE_MODEL_ARGS:
        found = describe(model)
        if found is not None:
            return found
    return None


def _adapter_tensors(model: nn.Module, adapter: str, config: NeatConfig) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, layer in neat_layers(model):
        if adapter in layer.neat:   # the parameters and buffers (scale="auto": the stored scales), by name
            net = layer.neat[adapter]   # (not state_dict: FSDP2 unshards parameters, not state dicts)
            for pname, tensor in [*net.named_parameters(), *net.named_buffers()]:
                tensors[f"{name}.neat.{pname}"] = tensor
    for module_name in config.modules_to_save:   # the adapter's own copy of each module it trains whole
        tensors.update(saved_parameters(model, module_name, adapter))
    return tensors


def trained_outside(model: nn.Module, config: NeatConfig) -> list[str]:
    """Modules (or top-level parameters) with a trainable parameter that neither the NEAT networks nor
    `config.modules_to_save` hold: a head built after patching, a norm unfrozen by hand..."""
    covered = set()
    for name in config.modules_to_save:
        covered |= {id(p) for p in saved_parameters(model, name).values()}
    adapted = {}
    for layer_name, layer in neat_layers(model):
        covered |= {id(p) for p in layer.neat.parameters()}
        adapted |= {id(p): f"{layer_name}.{n}" for n, p in layer.base_layer.named_parameters()}
    found: list[str] = []
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in covered:
            continue
        if id(param) in adapted:
            raise ValueError(f"{adapted[id(param)]} trains, but it is a weight that NEAT adapts, which an adapter "
                             "does not save: freeze it (requires_grad_(False)), or save the whole model "
                             "(model.state_dict()).")
        owner = name.rpartition(".")[0] or name
        if owner not in found:
            found.append(owner)
    return found


def with_trained_modules(model: nn.Module, adapter: str) -> NeatConfig:
    """The adapter's config with every module that trains outside it (the active adapter's) in modules_to_save."""
    config = adapter_configs(model)[adapter]
    extra = trained_outside(model, config) if adapter == active_adapter(model) else []
    return config.replace(modules_to_save=[*config.modules_to_save, *extra]) if extra else config


def _include_trained_modules(model: nn.Module, adapter: str) -> NeatConfig:
    """`with_trained_modules`, also made the model's config for `adapter` (what is saved is what trains)."""
    config = with_trained_modules(model, adapter)
    if config != adapter_configs(model)[adapter]:
        setattr(model, CONFIGS_ATTR, {**adapter_configs(model), adapter: config})
        record_adapters_on_config(model)
    return config


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


def save_adapter(model: nn.Module, path: str | os.PathLike, adapter: str | None = None,
                 base_model_args: dict[str, Any] | None = None) -> Path:
    """Write `adapter` (default: the active one) and every other module that trains (the head) to folder `path`.

    adapter_config.json also records the base: its name (`base_model`), class and, when a front end can tell, the
    arguments that rebuild it (`base_model_args`, e.g. timm create_model kwargs that differ from the
    architecture's defaults); `base_model_args=` gives them explicitly instead. A trainable module outside
    `modules_to_save` (a head built after patching) is added to the adapter's modules_to_save and saved.
    """
    configs = adapter_configs(model)
    if not configs:
        raise ValueError(f"This {type(model).__name__} has no NEAT adapter to save: add one first "
                         "(neat_vision.patch, neat_text.patch or neat_core.inject).")
    adapter = adapter or active_adapter(model)
    if adapter not in configs:
        raise ValueError(f"No adapter named {adapter!r} to save; this model has {sorted(configs)}.")
    if any(layer.merged_adapter for _, layer in neat_layers(model)):
        raise ValueError("The adapter is merged into the weights; call neat_core.unmerge(model) before saving.")
    if base_model_args is not None and not isinstance(base_model_args, dict):
        raise TypeError(f"base_model_args must be a dict of keyword arguments, got {type(base_model_args).__name__}.")
    args = dict(base_model_args) if base_model_args is not None else _described_base(model)
    try:
        json.dumps(args)
    except TypeError as err:
        raise TypeError(f"base_model_args must be JSON values (numbers, strings, lists, dicts): {err}.") from None
    config = _include_trained_modules(model, adapter)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in _adapter_tensors(model, adapter, config).items()}
    meta = {"config": config.to_dict(), "base_model": base_model_name(model), "model_class": type(model).__name__,
            "base_model_args": args,
            "library": "neat-peft", "library_version": library_version(), "format_version": FORMAT_VERSION}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2) + "\n"))
    return folder


def _described_base(model: nn.Module) -> dict[str, Any] | None:
    try:
        return base_model_args(model)
    except Exception as err:  # noqa: BLE001 (a description is optional: saving must not fail for it)
        warnings.warn(f"Could not work out the arguments that rebuild this {type(model).__name__} ({err}); the adapter "
                      "is saved without them: pass save_adapter(..., base_model_args={...}) to record them.",
                      UserWarning, stacklevel=3)
        return None


def read_adapter(path: str | os.PathLike) -> tuple[dict[str, Any], NeatConfig, dict[str, torch.Tensor]]:
    """Read and check an adapter folder: (metadata, config, tensors). Raises a clear error on bad files."""
    folder = Path(path)
    hint = f"expected a folder written by neat_core.save_adapter ({CONFIG_NAME} + {WEIGHTS_NAME})"
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {folder}: {hint}.")
    try:
        meta = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file} is not a valid NEAT adapter config ({err}); {hint}.") from None
    if isinstance(meta, dict) and "peft_type" in meta and "config" not in meta:
        raise _peft_folder_error(folder, meta["peft_type"])
    if not weights_file.is_file():
        raise FileNotFoundError(f"No {WEIGHTS_NAME} in {folder}: {hint}.")
    try:
        config = NeatConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{config_file} is not a valid NEAT adapter config ({err}); {hint}.") from None
    return meta, config, read_safetensors(weights_file)


def _peft_folder_error(folder: Path, peft_type: Any) -> ValueError:
    how = {"PEANUT": "neat_core.from_peft(model, folder)",
           "LORA": "peft.PeftModel.from_pretrained(model, folder), or transformers' model.load_adapter(folder)"}
    return ValueError(f"{folder} holds a PEFT {peft_type} adapter, not a NEAT adapter folder: load it with "
                      f"{how.get(str(peft_type).upper(), 'PEFT (peft.PeftModel.from_pretrained(model, folder))')}.")


def read_safetensors(path: Path, keys: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (only those whose name passes `keys`, when given), or one clear error
    when it is truncated or not safetensors."""
    from safetensors import safe_open

    try:
        if keys is None:
            return load_file(path)
        with safe_open(path, framework="pt") as file:
            return {k: file.get_tensor(k) for k in file.keys() if keys(k)}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err}); it may be truncated or "
                         "corrupt: save or download the adapter again.") from None


def saved_classes(config: NeatConfig, tensors: dict[str, torch.Tensor]) -> int | None:
    """The class count of the head saved with an adapter: output rows of the last weight (by name) inside the
    last of `modules_to_save` that has one (timm `head`, HF `classifier`, `classifier.out_proj`, `score`)."""
    for module in reversed(config.modules_to_save):
        weights = sorted(k for k, t in tensors.items() if k.startswith(f"{module}.") and k.endswith("weight")
                         and t.ndim >= 2)
        if weights:
            return int(tensors[weights[-1]].shape[0])
    return None


def resolve_adapter(repo_id_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local folder holding the adapter: `repo_id_or_path` itself when it is a path, else the
    huggingface_hub cache snapshot of the repo's adapter_config.json + adapter_model.safetensors at
    `revision` (branch, tag or commit; default main), downloaded if needed (cache only when offline)."""
    if not is_repo_id(repo_id_or_path):
        if revision is not None:
            raise ValueError(f"revision={revision!r} applies to Hub repo ids; {str(repo_id_or_path)!r} is a local "
                             "path.")
        return Path(repo_id_or_path)
    return download_adapter(str(repo_id_or_path), (CONFIG_NAME, WEIGHTS_NAME), revision)


def _expected_shapes(model: nn.Module, config: NeatConfig, adapter: str, fresh: bool = False
                     ) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape that `config` gives on `model` as `adapter` (injected already, or, when not or when
    `fresh`, as injecting it would make them)."""
    shapes = {}
    if adapter in adapter_configs(model) and not fresh:
        for name, param in _adapter_tensors(model, adapter, config).items():
            shapes[name] = tuple(param.shape)
        return shapes
    for name, spec in plan_injection(model, config).items():
        module = model.get_submodule(name)
        for pname, shape in network_shapes(*layer_features(module), config, spec).items():
            shapes[f"{name}.neat.{pname}"] = shape
    for module_name in config.modules_to_save:
        shapes.update({k: tuple(p.shape) for k, p in saved_parameters(model, module_name, adapter).items()})
    return shapes


def _mismatches(expected: dict[str, tuple[int, ...]], tensors: dict[str, torch.Tensor]) -> list[str]:
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k}: file has {tuple(tensors[k].shape)}, model needs {shape}"
                 for k, shape in expected.items() if k in tensors and tuple(tensors[k].shape) != shape]
    return problems


def load_adapter(model: nn.Module, path: str | os.PathLike, adapter: str = "default",
                 revision: str | None = None, replace: bool = False) -> nn.Module:
    """Load an adapter folder, or a Hub repo id ("owner/name" at `revision`; see `resolve_adapter`), into `model`
    as `adapter`, which becomes the active one.

    Config and every tensor shape are checked before anything changes; on a mismatch a ValueError explains
    it and the model is left as it was. A name already on the model is refused unless `replace=True`, which
    puts the loaded adapter (weights, config and trained modules) in place of the one of that name.
    """
    meta, config, tensors = read_adapter(resolve_adapter(path, revision))
    saved_for = meta.get("base_model") or meta.get("model_class") or "another model"
    return load_tensors(model, config, tensors, adapter, origin=str(path), saved_for=saved_for, replace=replace)


def load_tensors(model: nn.Module, config: NeatConfig, tensors: dict[str, torch.Tensor], adapter: str = "default",
                 origin: str = "the given tensors", saved_for: str = "another model", replace: bool = False
                 ) -> nn.Module:
    """Load `tensors` (keys as `save_adapter` writes them) for `config` into `model` as `adapter`, checking the
    config and every shape first; on a mismatch a ValueError explains it and the model is left as it was. An
    existing `adapter` is refused unless `replace=True`."""
    existing = adapter_configs(model).get(adapter)
    if existing is not None and not replace:
        raise ValueError(f"Adapter {adapter!r} already exists on this model; load {origin} under another name "
                         f"(adapter=...), or pass replace=True to put it in place of the existing {adapter!r}.")
    if existing is not None and any(layer.merged_adapter == adapter for _, layer in neat_layers(model)):
        raise ValueError(f"Adapter {adapter!r} is merged; call neat_core.unmerge(model) before replacing it.")
    rebuild = existing is not None and existing != config
    try:
        expected = _expected_shapes(model, config, adapter, fresh=rebuild)
    except ValueError as err:
        raise ValueError(f"The adapter at {origin} (saved for {saved_for}) does not fit this "
                         f"{type(model).__name__}: {err}") from None
    problems = _mismatches(expected, tensors)
    if problems:
        raise ValueError(f"The adapter at {origin} (saved for {saved_for}) does not fit this "
                         f"{type(model).__name__}: {'; '.join(problems[:5])}"
                         f"{f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''}.")
    if rebuild:
        delete_adapter(model, adapter)
    if existing is None or rebuild:
        inject(model, config, adapter, compute_scales=False)   # scale="auto": the saved scales, not recomputed
    else:
        set_adapter(model, adapter)
    targets = _adapter_tensors(model, adapter, config)
    with torch.no_grad():
        for name, tensor in tensors.items():
            targets[name].copy_(tensor)
    return model
