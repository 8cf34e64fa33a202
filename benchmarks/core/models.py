"""Where the backbone comes from: a timm name (Hub weights), a local timm folder, or a safetensors file; for
the GLUE suite a transformers name (Hub) or a local save_pretrained folder with its tokenizer.

Every model is loaded in fp32 (WEIGHT_DTYPE), whatever dtype its checkpoint is stored in: the trainable weights
need fp32 master copies, and the loop's autocast (bf16 on CUDA) sets the compute dtype. `architecture` /
`text_architecture` build the same models with random weights (on the meta device under
`with torch.device("meta")`) for exact parameter counts without downloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import timm
import timm.data
import torch
from torch import nn

from neat_core.remote import hub_reachable, offline_mode


class ModelUnavailableError(RuntimeError):
    """The pretrained weights can be neither downloaded nor found locally."""


@dataclass(frozen=True)
class ModelSource:
    """name: timm model name; path: a folder with config.json + model.safetensors (timm's save_for_hf /
    Hub layout) or a .safetensors state dict for `name`; args: extra timm.create_model arguments."""

    name: str
    path: str | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "model_path": self.path, "model_args": self.args}


WEIGHT_DTYPE = torch.float32

TIMM_COPY = "a timm folder with config.json + model.safetensors, or a .safetensors state dict"
TEXT_COPY = "a transformers save_pretrained folder holding the model and its tokenizer"


def _unavailable(source: ModelSource, why: str, copy: str = TIMM_COPY) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"Pretrained weights of {source.name!r} are not available: {why}. Pass --model-path with a local copy "
        f"({copy}).")


def _local_path(source: ModelSource, copy: str) -> Path | None:
    """source.path as a Path (it must exist); without one, the Hub must be reachable (or offline mode on)."""
    path = Path(source.path) if source.path else None
    if path is not None and not path.exists():
        raise ModelUnavailableError(f"--model-path {path} does not exist.")
    if path is None and not offline_mode() and not hub_reachable():
        raise _unavailable(source, "the Hugging Face Hub cannot be reached (no network)", copy)
    return path


def create_model(source: ModelSource, num_classes: int) -> nn.Module:
    """The pretrained backbone with a freshly initialised `num_classes` head (from the current torch seed)."""
    path = _local_path(source, TIMM_COPY)
    kwargs = {**source.args, "num_classes": 0}  # no head: timm then drops the checkpoint's classifier
    try:
        if path is not None and path.is_dir():
            model = timm.create_model(f"local-dir:{path}", pretrained=True, **kwargs)
        elif path is not None:
            model = timm.create_model(source.name, pretrained=True, pretrained_cfg_overlay={"file": str(path)},
                                      **kwargs)
        else:
            model = timm.create_model(source.name, pretrained=True, **kwargs)
    except (OSError, ValueError) as err:  # offline without a cached copy, unreadable files
        raise _unavailable(source, f"{type(err).__name__}: {err}") from None
    model.reset_classifier(num_classes)
    return model.to(WEIGHT_DTYPE)   # timm copies checkpoint tensors into fp32 parameters; made explicit


def architecture(source: ModelSource, num_classes: int) -> nn.Module:
    """`source`'s architecture with random weights and a `num_classes` head (nothing is downloaded; a local
    timm folder gives its config.json), built with the same create_model arguments as `create_model`."""
    path = Path(source.path) if source.path else None
    name = f"local-dir:{path}" if path is not None and path.is_dir() else source.name
    return timm.create_model(name, pretrained=False, **{**source.args, "num_classes": num_classes})


def data_config(model: nn.Module) -> dict[str, Any]:
    """timm's preprocessing for the model as built (input size of the current model, mean/std, crop_pct)."""
    return dict(timm.data.resolve_input_data_config(model))


def _text_pretrained(source: ModelSource, auto_class: str, **kwargs: Any) -> Any:
    import transformers

    path = _local_path(source, TEXT_COPY)
    try:
        return getattr(transformers, auto_class).from_pretrained(str(path or source.name), **kwargs)
    except OSError as err:  # offline without a cached copy, a folder without the files
        first_line = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
        raise _unavailable(source, f"{type(err).__name__}: {first_line}", TEXT_COPY) from None


def text_tokenizer(source: ModelSource) -> Any:
    """The tokenizer of a transformers model (Hub name or local folder)."""
    return _text_pretrained(source, "AutoTokenizer")


def create_causal_lm(source: ModelSource, **kwargs: Any) -> nn.Module:
    """A transformers causal LM (Hub name or local folder); kwargs go to from_pretrained (e.g. dtype)."""
    return _text_pretrained(source, "AutoModelForCausalLM", **kwargs)


def create_text_model(source: ModelSource, num_labels: int) -> nn.Module:
    """A transformers sequence classifier with a `num_labels` head (1: regression, MSE), in fp32 whatever the
    checkpoint's dtype: new, from the current torch seed, unless the checkpoint holds a head of that size (one of
    another size is replaced)."""
    return _text_pretrained(source, "AutoModelForSequenceClassification", num_labels=num_labels,
                            ignore_mismatched_sizes=True, dtype=WEIGHT_DTYPE)


def text_architecture(source: ModelSource, num_labels: int) -> nn.Module:
    """`source`'s sequence classifier with random weights (its config only)."""
    import transformers

    config = _text_pretrained(source, "AutoConfig", num_labels=num_labels)
    return transformers.AutoModelForSequenceClassification.from_config(config)
