"""Where the backbone comes from: a timm name (Hub weights), a local timm folder, or a safetensors file; for
the GLUE suite a transformers name (Hub) or a local save_pretrained folder with its tokenizer.

Hub weights load at a commit: the suites' models are pinned in `MODEL_PINS` (with where each commit was found, or
None: recorded at first download, see core.sources); `ModelSource.revision` is the commit a run resolved. A gated,
missing or uncached model fails with one message (core.sources.hub_error) naming what to do.

Every model is loaded in fp32 (WEIGHT_DTYPE), whatever dtype its checkpoint is stored in: the trainable weights
need fp32 master copies, and the loop's autocast (bf16 on CUDA) sets the compute dtype. `architecture` /
`text_architecture` build the same models with random weights (on the meta device under
`with torch.device("meta")`) for exact parameter counts without downloads."""

from __future__ import annotations

import json

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import timm
import timm.data
import torch
from torch import nn

from neat_core.remote import hub_reachable, offline_mode

from .sources import AT_FIRST_DOWNLOAD, Pin, Sources, hub_call


class ModelUnavailableError(RuntimeError):
    """The pretrained weights can be neither downloaded nor found locally."""


NOT_FOUND = "no commit found from here: recorded at first download"
# The suites' pretrained models on the Hub, by the name the suites use, each at a commit with where it was found.
MODEL_PINS: dict[str, Pin] = {
    # vtab (and ablate): the NEAT / FourierFT papers' ViT-B/16 (ImageNet-21k) as timm ships it
    "vit_base_patch16_224.orig_in21k": Pin(
        "timm/vit_base_patch16_224.orig_in21k", "677f7d814cf0d89b7e65b1ea49277ed508a62363",
        "its tree page @ 677f7d81 (the latest commit seen, 'Update README.md'; the weights are from 'Add model', "
        "2023-11-17)", "model"),
    # glue (and ablate's GLUE scale study)
    "roberta-base": Pin(
        "roberta-base", "e2da8e2f811d1448a5b465c236feacd80ffbac7b",
        "the Hub repository FacebookAI/roberta-base: the most recent commit seen, listed as the main ref of a public "
        "`hf cache scan` output and in Hugging Face cache paths of public code", "model"),
    # llm
    "meta-llama/Llama-2-7b-hf": Pin(
        "meta-llama/Llama-2-7b-hf", "01c7f73d771dfac7d292323805ebc428287df4f9",
        "embeddings-benchmark/mteb mteb/models/model_implementations/rerankers_monot5_based.py@a905523d0111f999360b312bd4a601a0a97a0e1c (revision=)",
        "model"),
    "meta-llama/Meta-Llama-3-8B": Pin("meta-llama/Meta-Llama-3-8B", None, NOT_FOUND + " (four commits are pinned "
                                      "in public code; which is main's head was not established)", "model"),
    "meta-llama/Llama-3.2-3B": Pin(
        "meta-llama/Llama-3.2-3B", "13afe5124825b4f3751f836b40dafda64c1ed062",
        "huggingface/peft method_comparison/MetaMathQA/results/lora--llama-3.2-3B-rank32.json @ "
        "0a179c1e8659ab4f7df0369b9b03943cfe470ff1 (meta_info: the model's sha)", "model"),
}


def model_pin(name: str, library: str = "transformers") -> Pin:
    """The Hub repository and commit of model `name` (a timm name or a transformers id): its MODEL_PINS entry, else
    the repository timm's pretrained config names (timm) or `name` itself, at the commit recorded at first
    download."""
    if name in MODEL_PINS:
        return MODEL_PINS[name]
    repo = name
    if library == "timm":
        config = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
        repo = getattr(config, "hf_hub_id", None) or name
    return Pin(repo, None, AT_FIRST_DOWNLOAD, "model")


@dataclass(frozen=True)
class ModelSource:
    """name: timm model name; path: a folder with config.json + model.safetensors (timm's save_for_hf /
    Hub layout) or a .safetensors state dict for `name`; args: extra timm.create_model arguments; revision: the
    Hub commit to load (None: the cached or current one)."""

    name: str
    path: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "model_path": self.path, "model_args": self.args,
                "model_revision": self.revision}

    def __hash__(self) -> int:   # a key for caches of counts (`args` is a dict)
        return hash(json.dumps(self.describe(), sort_keys=True, default=str))


WEIGHT_DTYPE = torch.float32

TIMM_COPY = "a timm folder with config.json + model.safetensors, or a .safetensors state dict"
TEXT_COPY = "a transformers save_pretrained folder holding the model and its tokenizer"


def _weights(what: str) -> str:
    return f"Pretrained weights of {what!r}"


def _unavailable(source: ModelSource, why: str, copy: str = TIMM_COPY) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"{_weights(source.name)} are not available: {why}. Pass --model-path with a local copy "
        f"({copy}).")


def resolved(source: ModelSource, sources: Sources, library: str = "transformers") -> ModelSource:
    """`source` at the commit this run loads (--revision, its pin, the lock file, else recorded at first download),
    recorded in `sources`; a local copy (--model-path) is recorded as one."""
    copy = TIMM_COPY if library == "timm" else TEXT_COPY
    if _local_path(source, copy) is not None:   # (no path: the Hub must be reachable, or offline mode on)
        sources.local(model_pin(source.name, library), source.name, source.path, "--model-path")
        return source
    return replace(source, revision=sources.revision(model_pin(source.name, library),
                                                     f"--model-path with a local copy ({copy})"))


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
            pin = model_pin(source.name, "timm")
            at = {"pretrained_cfg_overlay": {"hf_hub_id": f"{pin.repo}@{source.revision}"}} if source.revision else {}
            model = hub_call(lambda: timm.create_model(source.name, pretrained=True, **at, **kwargs), pin,
                             source.revision, f"--model-path with a local copy ({TIMM_COPY})", _weights(source.name))
    except (OSError, ValueError) as err:  # unreadable files
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
    load = getattr(transformers, auto_class).from_pretrained
    try:
        if path is not None:
            return load(str(path), **kwargs)
        at = {"revision": source.revision} if source.revision else {}
        return hub_call(lambda: load(source.name, **at, **kwargs), model_pin(source.name), source.revision,
                        f"--model-path with a local copy ({TEXT_COPY})", _weights(source.name))
    except OSError as err:  # a folder without the files
        first_line = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
        raise _unavailable(source, f"{type(err).__name__}: {first_line}", TEXT_COPY) from None


def text_config(source: ModelSource, **kwargs: Any) -> Any:
    """The transformers config of `source` (Hub name at its revision, or local folder)."""
    return _text_pretrained(source, "AutoConfig", **kwargs)


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

    config = text_config(source, num_labels=num_labels)
    return transformers.AutoModelForSequenceClassification.from_config(config)
