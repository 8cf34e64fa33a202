"""`neat_text.from_pretrained`: the transformers base model an adapter names, patched and loaded, in one call."""

from __future__ import annotations

import os
from typing import Any

from torch import nn

import neat_core
from neat_core.hub import saved_classes
from neat_core.io import load_tensors

from .patch import patch


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


def from_pretrained(repo_id_or_path: str | os.PathLike, revision: str | None = None, *,
                    model_path: str | os.PathLike | None = None, adapter: str = "default",
                    **model_kwargs: Any) -> nn.Module:
    """The transformers model an adapter was trained on, with the adapter (and its trained head) loaded, in eval
    mode.

    `repo_id_or_path`: a folder written by `neat_core.save_adapter` or a Hub repo id ("owner/name", at
    `revision`). The base is `AutoModelFor<task>.from_pretrained(<base_model in adapter_config.json, or
    model_path>, num_labels=<rows of the saved head>, **model_kwargs)`, with the task taken from the saved model
    class; `model_path` points at a local copy of the base (a `save_pretrained` folder).
    """
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
    patch(model, config=config, train_head=False, adapter=adapter)
    load_tensors(model, config, tensors, adapter, origin=str(repo_id_or_path),
                 saved_for=meta.get("base_model") or meta.get("model_class") or "another model")
    return model.eval()
