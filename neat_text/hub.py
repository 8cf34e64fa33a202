"""`neat_text.from_pretrained`: a transformers model with its NEAT adapters, in one call, from an adapter folder
(`neat_core.save_adapter`, local or on the Hub) or from a `save_pretrained` / Trainer checkpoint folder of a
patched model (config.json names the adapters, model.safetensors holds base and adapter tensors)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neat_core
from neat_core import NeatConfig
from neat_core.inject import ACTIVE_ATTR, ADAPTER_KEY, CONFIGS_ATTR, adapter_keys
from neat_core.io import CONFIG_NAME, load_tensors, read_safetensors, saved_classes


SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"


def auto_class(model_class: str | None):
    """The `AutoModelFor...` class for a saved model class name (BertForSequenceClassification ->
    AutoModelForSequenceClassification), else that class itself from transformers."""
    import transformers

    task = model_class[model_class.find("For"):] if model_class and "For" in model_class else None
    found = getattr(transformers, f"AutoModel{task}", None) if task else None
    found = found or getattr(transformers, model_class or "", None)
    if found is None:
        raise ValueError(f"The adapter was saved for model class {model_class!r}, which transformers does not have.")
    return found


def _fp32_unless_asked(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """transformers loads in the checkpoint's dtype by default; NEAT trains and evaluates on an fp32 base unless the
    caller passes dtype= (fp16 on a CPU is many times slower, and half-precision weights have no fp32 master)."""
    if "dtype" in model_kwargs or "torch_dtype" in model_kwargs:
        return model_kwargs
    return {**model_kwargs, "dtype": torch.float32}


def from_pretrained(repo_id_or_path: str | os.PathLike, revision: str | None = None, *,
                    model_path: str | os.PathLike | None = None, adapter: str = "default",
                    **model_kwargs: Any) -> nn.Module:
    """The transformers model an adapter was trained on, with the adapter (and its trained head) loaded, in eval
    mode; the base in fp32 unless `dtype=` is given.

    `repo_id_or_path` is one of
    - a folder written by `neat_core.save_adapter`, or a Hub repo id of one ("owner/name", at `revision`): the base
      is `AutoModelFor<task>.from_pretrained(<base_model in adapter_config.json, or model_path>,
      num_labels=<rows of the saved head>, **model_kwargs)`, the task taken from the saved model class;
      `model_path` points at a local copy of the base (a `save_pretrained` folder);
    - a local `save_pretrained` / Trainer checkpoint folder of a patched model (config.json lists its NEAT
      adapters; model.safetensors, or shards with model.safetensors.index.json, hold base and adapters): every
      adapter comes back, the saved active one active.
    """
    model_kwargs = _fp32_unless_asked(model_kwargs)
    if _is_checkpoint(repo_id_or_path):
        if model_path is not None or revision is not None:
            raise ValueError(f"{str(repo_id_or_path)!r} is a save_pretrained folder that holds its base model: "
                             "model_path= and revision= do not apply.")
        return _from_checkpoint(Path(repo_id_or_path), **model_kwargs)
    meta, config, tensors = neat_core.read_adapter(neat_core.resolve_adapter(repo_id_or_path, revision))
    auto = auto_class(meta.get("model_class"))
    num_labels = saved_classes(config, tensors)
    if num_labels is not None and "Classification" in auto.__name__:
        model_kwargs.setdefault("num_labels", num_labels)
    base = str(model_path) if model_path is not None else meta.get("base_model")
    if not base:
        raise ValueError("The adapter does not name its base model; pass model_path= (a save_pretrained folder).")
    try:
        model = auto.from_pretrained(base, **model_kwargs)
    except OSError as err:  # offline and not cached, missing folder
        raise FileNotFoundError(f"Cannot load base model {base!r} ({err}). Pass model_path= (a local "
                                "save_pretrained folder) or set HF_HUB_CACHE to a cache that has it.") from None
    load_tensors(model, config, tensors, adapter, origin=str(repo_id_or_path),   # injects the adapter as saved
                 saved_for=meta.get("base_model") or meta.get("model_class") or "another model")
    return model.eval()


# --- save_pretrained / Trainer checkpoint folders --------------------------------------------------------------
def _is_checkpoint(path: str | os.PathLike) -> bool:
    """A local folder with config.json and no adapter_config.json (a save_pretrained folder, not an adapter)."""
    folder = Path(path)
    return folder.is_dir() and (folder / "config.json").is_file() and not (folder / CONFIG_NAME).is_file()


def _saved_configs(folder: Path, config: Any) -> tuple[dict[str, NeatConfig], str]:
    saved = getattr(config, CONFIGS_ATTR, None)
    if not isinstance(saved, dict) or not saved:
        raise ValueError(f"{folder} is a transformers save_pretrained folder without NEAT adapters (its config.json "
                         f"has no {CONFIGS_ATTR!r}): load it with transformers' from_pretrained, or pass a folder "
                         "written by neat_core.save_adapter or by save_pretrained of a patched model.")
    try:
        configs = {name: NeatConfig.from_dict(fields) for name, fields in saved.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder / 'config.json'} has an invalid {CONFIGS_ATTR!r} entry ({err}).") from None
    active = getattr(config, ACTIVE_ATTR, None)
    return configs, active if active in configs else next(iter(configs))


def checkpoint_tensors(folder: Path, wanted: set[str]) -> dict[str, torch.Tensor]:
    """The tensors named in `wanted` from a save_pretrained folder's model.safetensors, or from the shards its
    model.safetensors.index.json lists (only the files that hold them are opened)."""
    index = folder / SAFE_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index} is not a valid safetensors index ({err}).") from None
        files = sorted({weight_map[k] for k in wanted if k in weight_map})
    elif (folder / SAFE_WEIGHTS).is_file():
        files = [SAFE_WEIGHTS]
    else:
        raise FileNotFoundError(f"No {SAFE_WEIGHTS} or {SAFE_INDEX} in {folder}: neat_text reads safetensors "
                                "checkpoints only (save_pretrained's default).")
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(read_safetensors(folder / name, keys=wanted.__contains__))
    return tensors


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Hold back transformers' load report while the plain class loads a checkpoint that holds NEAT keys: they
    are 'unexpected' to it by design; `_check_base_loaded` then speaks about anything else."""
    logger = logging.getLogger("transformers.modeling_utils")
    report = _DropLoadReport()
    logger.addFilter(report)
    try:
        yield
    finally:
        logger.removeFilter(report)


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def _check_base_loaded(folder: Path, info: dict[str, Any]) -> None:
    missing = sorted(info.get("missing_keys") or ())
    foreign = sorted(k for k in info.get("unexpected_keys") or () if ADAPTER_KEY.search(k) is None)
    if missing or foreign:
        warnings.warn(f"Loading {folder}: base weights newly initialised because the checkpoint lacks them: "
                      f"{missing[:5] or 'none'}; checkpoint tensors the model does not use: {foreign[:5] or 'none'}.",
                      UserWarning, stacklevel=3)


def _from_checkpoint(folder: Path, **model_kwargs: Any) -> nn.Module:
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    configs, active = _saved_configs(folder, config)
    auto = auto_class((getattr(config, "architectures", None) or [None])[0])
    with _quiet_load_report():
        model, info = auto.from_pretrained(folder, output_loading_info=True, **model_kwargs)
    _check_base_loaded(folder, info)
    for name, adapter_config in configs.items():
        neat_core.inject(model, adapter_config, adapter=name, compute_scales=False)   # scale="auto": loaded below
    neat_core.set_adapter(model, active)
    wanted = adapter_keys(model)
    tensors = checkpoint_tensors(folder, wanted)
    if set(tensors) != wanted:
        missing = sorted(wanted - set(tensors))
        raise ValueError(f"{folder} does not hold every NEAT tensor its config.json names ({len(missing)} missing, "
                         f"e.g. {missing[0]}); it was not written by save_pretrained of the patched model.")
    model.load_state_dict(tensors, strict=False)
    return model.eval()
