"""`neat_vision.from_pretrained`: the timm base model an adapter names, patched and loaded, in one call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

import neat_core
from neat_core.io import load_tensors, saved_classes
from neat_core.remote import cached_file, hub_unavailable_reason

from .rebuild import argument_names

WAYS_OUT = ("Pass model_path= (a timm folder with config.json + model.safetensors, or a weights file), or "
            "pretrained=False for random weights.")


def timm_name(name: str) -> str:
    """`name` if timm knows it (architecture or architecture.tag), else its architecture: a base pre-trained
    elsewhere (vit_tiny_patch16_224.digits04) takes its weights from a file and its defaults from timm."""
    import timm

    return name if "." not in name or name in timm.list_pretrained(name) else name.split(".")[0]


def _safetensors_names(filename: str | None) -> tuple[str, ...]:
    """The safetensors files timm would read for a Hub weights file (it prefers them over pickles)."""
    if filename is None or filename == "pytorch_model.bin":
        return ("model.safetensors",)
    if filename.endswith(".safetensors"):
        return (filename,)
    stem = filename.rsplit(".", 1)[0]
    return (f"{stem.replace('pytorch_model', 'model')}.safetensors", f"{stem}.safetensors")


def _cached_weights(name: str, why: str) -> Path:
    """The Hugging Face cache's copy of timm model `name`'s pretrained weights; without one, a FileNotFoundError
    that says why the Hub was not asked."""
    import timm
    from huggingface_hub import constants

    cfg = timm.models.get_pretrained_cfg(timm_name(name))
    hub_id = getattr(cfg, "hf_hub_id", None)
    if hub_id:
        repo, _, revision = hub_id.partition("@")
        found = cached_file(repo, _safetensors_names(cfg.hf_hub_filename), revision or None)
        if found is not None:
            return found
    where = f"{hub_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})" if hub_id else \
        "timm has no Hub copy of them"
    raise FileNotFoundError(f"Cannot build base model {name!r} with pretrained weights: {why}, and {where}. "
                            f"{WAYS_OUT}")


def create_base(name: str | None, model_path: str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
    """`timm.create_model` for an adapter's base: from `model_path` when given (a timm folder with config.json +
    model.safetensors as `save_for_hf` writes it, or a .safetensors state dict for `name`'s architecture),
    else `name` with the weights timm finds (Hub or cache; only the cache when the Hub cannot be reached or
    HF_HUB_OFFLINE is set). Raises one clear error when the weights are missing or do not fit."""
    import timm

    path = Path(model_path) if model_path is not None else None
    if path is not None and not path.exists():
        raise FileNotFoundError(f"model_path {str(path)!r} does not exist.")
    if path is not None and kwargs.get("pretrained") is False:
        raise ValueError("model_path= loads pretrained weights; it cannot be combined with pretrained=False.")
    if not name and (path is None or path.is_file()):
        raise ValueError("The adapter does not name its base model; pass model_path= (a timm folder).")
    overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
    if path is None and kwargs.get("pretrained") and "file" not in overlay and timm_name(name) == name:
        why = hub_unavailable_reason()
        if why is not None:
            path = _cached_weights(name, why)
    try:
        if path is not None and path.is_dir():
            return timm.create_model(f"local-dir:{path}", **{**kwargs, "pretrained": True})
        if path is not None:
            return timm.create_model(timm_name(name), **{**kwargs, "pretrained": True},
                                     pretrained_cfg_overlay={**overlay, "file": str(path)})
        if overlay:
            kwargs["pretrained_cfg_overlay"] = overlay
        return timm.create_model(name if kwargs.get("pretrained") else timm_name(name), **kwargs)
    except RuntimeError as err:
        if "size mismatch" in str(err):
            raise ValueError(f"The pretrained weights of {name!r} do not fit the model built with {kwargs} "
                             f"({str(err).splitlines()[-1].strip()}). {_arguments_hint(name)}") from None
        raise FileNotFoundError(_not_found(name, err)) from None
    except OSError as err:  # not cached, unknown tag, unreadable weights
        raise FileNotFoundError(_not_found(name, err)) from None


def _not_found(name: str | None, err: BaseException) -> str:
    return f"Cannot build base model {name!r} with pretrained weights ({type(err).__name__}: {err}). {WAYS_OUT}"


def _arguments_hint(name: str | None, model: nn.Module | None = None) -> str:
    """What to pass when the base was built with other create_model arguments than the adapter records."""
    names = argument_names(model) if model is not None else []
    examples = ", ".join(f"{n}=..." for n in names) or "img_size=..., patch_size=..., depth=..., embed_dim=..."
    return (f"If the adapter was trained on a {name or 'timm model'} built with other timm.create_model "
            f"arguments, pass them to from_pretrained ({examples}).")


def from_pretrained(repo_id_or_path: str | os.PathLike, revision: str | None = None, *,
                    model_path: str | os.PathLike | None = None, adapter: str = "default",
                    **create_kwargs: Any) -> nn.Module:
    """The timm model an adapter was trained on, with the adapter (and its trained head) loaded, in eval mode.

    `repo_id_or_path`: a folder written by `neat_core.save_adapter` or a Hub repo id ("owner/name", at
    `revision`). The base is `timm.create_model(<base_model in adapter_config.json>, pretrained=True,
    **<base_model_args in adapter_config.json>, num_classes=<rows of the saved head>, **create_kwargs)`: the
    create_model arguments save_adapter recorded come back, and yours win; timm's own options work as usual
    (`pretrained_cfg_overlay=dict(file=...)`, `pretrained=False`, `img_size=...`), and `model_path=` takes the
    base weights from a local timm folder or weights file instead of the Hub.
    """
    folder = neat_core.resolve_adapter(repo_id_or_path, revision)
    meta, config, tensors = neat_core.read_adapter(folder)
    recorded = meta.get("base_model_args")
    kwargs: dict[str, Any] = {"pretrained": True, **(recorded or {})}
    num_classes = saved_classes(config, tensors)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    kwargs.update(create_kwargs)
    name = meta.get("base_model")
    model = create_base(name, model_path, **kwargs)
    try:   # injects the adapter as saved (scale="auto": the stored scales, not recomputed)
        load_tensors(model, config, tensors, adapter, origin=str(repo_id_or_path),
                     saved_for=name or meta.get("model_class") or "another model")
    except ValueError as err:
        if recorded is not None:
            raise
        raise ValueError(f"{err} The adapter records no base_model_args. {_arguments_hint(name, model)}") from None
    return model.eval()
