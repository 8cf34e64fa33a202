"""The two models the demo compares (a NEAT and a PEFT LoRA adapter on one base), built once and cached."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neat_core
from neat_core.io import CONFIG_NAME, WEIGHTS_NAME, base_model_name

SMOKE_RESULTS = Path("results") / "smoke"
GLUE_RESULTS = Path("results") / "glue"
TIMED_RUNS = 5  # latency: the best of this many forward passes
MAKE_IT = ("run `make bench` (the offline smoke suite: `python -m benchmarks.vtab --suite smoke`), which trains "
           "and saves a NEAT and a LoRA adapter there")
MAKE_TEXT = ("train and save a pair with `python -m benchmarks.glue --method neat-s,lora --save-adapters neat-s,lora "
             "--tasks sst2` (GLUE data and a base model: from the Hub or --data-dir / --model-path)")


class LoadError(ValueError):
    """A base model or adapter the demo cannot load; the message is meant for the page."""


@dataclass(frozen=True)
class Choice:
    """What the page starts with: base model, the two adapters, class names (empty: from the model)."""

    base: str = ""
    neat: str = ""
    lora: str = ""
    labels: str = ""


@dataclass
class Classifier:
    """One adapted model with what it takes to run it on a raw input (an image or a text)."""

    method: str
    model: nn.Module
    labels: list[str]
    prepare: Callable[[Any], dict[str, torch.Tensor]]
    trainable: int
    repeats: int = TIMED_RUNS

    @property
    def merged(self) -> bool:
        """Whether the adapter runs written into the base weights (else beside them, as when serving several)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        return any(layer.merged_adapter is not None for _, layer in neat_core.neat_layers(self.model)) or any(
            module.merged for module in self.model.modules() if isinstance(module, BaseTunerLayer))

    def __call__(self, raw: Any) -> tuple[torch.Tensor, float]:
        """Class probabilities for `raw` and the forward pass's latency in milliseconds: the best of `repeats`
        timed runs after an untimed one (start-up costs and a busy machine's stalls do not count; an unmerged NEAT
        model computes its factors in that first run and reuses them, see NeatLinear's inference cache)."""
        inputs = self.prepare(raw)
        times = []
        with torch.inference_mode():
            out = self.model(**inputs)
            for _ in range(self.repeats):
                start = time.perf_counter()
                self.model(**inputs)
                times.append((time.perf_counter() - start) * 1000)
        logits = getattr(out, "logits", out)
        return logits[0].float().softmax(-1), min(times)


# --- defaults: adapters a benchmark suite saved ---------------------------------------------------------
def _existing(path: str | None, results_dir: Path) -> str | None:
    """`path` as written in a result file (relative to where the suite ran), if it exists here."""
    if not path:
        return None
    for candidate in (Path(path), results_dir.parent.parent / path):
        if candidate.exists():
            return str(candidate)
    return None


def saved_choice(results_dir: str | Path = SMOKE_RESULTS) -> Choice | None:
    """A NEAT adapter (method neat, neat-s, ...) and a LoRA adapter that a benchmark suite saved for the same
    dataset under `results_dir` (of a sweep: the runs at the lr chosen on validation), with the base they were
    trained on; None if there is no such pair."""
    from benchmarks.core.sweep import selected

    results_dir = Path(results_dir)
    results = []
    for file in sorted((results_dir / "runs").glob("*.json")):
        try:
            result = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(result, dict) and {"method", "dataset"} <= set(result):
            results.append(result)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for result in selected(results):
        if _existing(result.get("adapter_path"), results_dir):
            found.setdefault((str(result.get("method")), result.get("dataset")), result)
    for (method, dataset), neat in found.items():
        lora = found.get(("lora", dataset))
        if not method.startswith("neat") or lora is None:
            continue
        base = _existing(neat.get("config", {}).get("model_path"), results_dir) or ""
        return Choice(base, _existing(neat["adapter_path"], results_dir), _existing(lora["adapter_path"], results_dir),
                      ", ".join(_dataset_labels(dataset)))
    return None


def missing_message(results_dir: str | Path, command: str = MAKE_IT) -> str:
    return f"No NEAT and LoRA adapters saved in `{results_dir}`: {command}. Or enter adapter folders or Hub ids above."


def _dataset_labels(dataset: str | None) -> list[str]:
    try:
        from benchmarks.vtab.data import get_spec

        return [str(c) for c in get_spec(dataset).classes]
    except (ImportError, ValueError):
        return []


# --- loading --------------------------------------------------------------------------------------------
def _lora_folder(lora: str) -> Path:
    """A PEFT LoRA adapter folder (a Hub id is downloaded through the cache); only safetensors weights."""
    if not lora:
        raise LoadError("Enter a LoRA adapter: a folder written by PEFT's save_pretrained or a Hub id.")
    folder = neat_core.resolve_adapter(lora)
    config_file = folder / CONFIG_NAME
    if not config_file.is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise LoadError(f"{lora!r} is not a PEFT adapter folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
                        "(this demo does not read pickled .bin weights).")
    peft_type = json.loads(config_file.read_text()).get("peft_type")
    if peft_type != "LORA":
        raise LoadError(f"{lora!r} is not a PEFT LoRA adapter (peft_type {peft_type!r}).")
    return folder


def _with_lora(base: nn.Module, lora: str) -> nn.Module:
    """`base` with the LoRA adapter; a timm adapter trained on q and v of the split attn.qkv (benchmarks.vtab's
    default) gets a base with the same split (neat_vision.qkv; the same outputs)."""
    from peft import PeftModel

    from benchmarks.core.methods import split_for_peft

    folder = _lora_folder(lora)
    targets = json.loads((folder / CONFIG_NAME).read_text()).get("target_modules") or []
    return PeftModel.from_pretrained(split_for_peft(base, targets), str(folder), is_trainable=True).eval()


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _labels(text: str, count: int, fallback: list[str] | None = None) -> list[str]:
    given = [t.strip() for t in text.split(",") if t.strip()]
    if given and len(given) != count:
        raise LoadError(f"{len(given)} class names given, but the models have {count} classes.")
    if given:
        return given
    return fallback if fallback and len(fallback) == count else [f"class {i}" for i in range(count)]


def _local(base: str) -> str | None:
    if not base:
        return None
    if not Path(base).exists():
        raise LoadError(f"Base model {base!r} does not exist: give a local folder or weights file, or leave it "
                        "empty to use the base model the NEAT adapter names.")
    return base


def _vision(choice: Choice) -> tuple[nn.Module, nn.Module, Callable[[Any], dict[str, torch.Tensor]], list[str]]:
    import numpy as np
    import timm

    import neat_vision
    from benchmarks.vtab.data import build_transform
    from neat_vision.hub import create_base

    model_path = _local(choice.base)
    neat = neat_vision.from_pretrained(choice.neat, model_path=model_path)
    base = create_base(base_model_name(neat), model_path, num_classes=neat.num_classes)
    lora = _with_lora(base, choice.lora)
    transform = build_transform(timm.data.resolve_model_data_config(neat), train=False)

    def prepare(image) -> dict[str, torch.Tensor]:
        return {"x": transform(image=np.asarray(image))["image"][None]}

    fallback = None
    if neat.num_classes == 1000:
        fallback = timm.data.ImageNetInfo().label_descriptions()
    return neat, lora, prepare, fallback


def _text(choice: Choice) -> tuple[nn.Module, nn.Module, Callable[[Any], dict[str, torch.Tensor]], list[str]]:
    from transformers import AutoTokenizer

    import neat_text
    from neat_text.hub import auto_class

    model_path = _local(choice.base)
    # fp32 whatever the checkpoint stores (transformers would keep an fp16 checkpoint in fp16: slow on CPUs)
    neat = neat_text.from_pretrained(choice.neat, model_path=model_path, dtype=torch.float32)
    source = model_path or neat.name_or_path
    auto = auto_class(type(neat).__name__)
    lora = _with_lora(auto.from_pretrained(source, num_labels=neat.config.num_labels, dtype=torch.float32),
                      choice.lora)
    tokenizer = AutoTokenizer.from_pretrained(source)

    def prepare(text: str) -> dict[str, torch.Tensor]:
        return dict(tokenizer(text, return_tensors="pt", truncation=True, max_length=512))

    labels = [neat.config.id2label[i] for i in range(neat.config.num_labels)]
    return neat, lora, prepare, labels


_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def _load(kind: str, choice: Choice) -> tuple[Classifier, Classifier]:
    if not choice.neat:
        raise LoadError("Enter a NEAT adapter: a folder written by neat_core.save_adapter or a Hub id.")
    neat, lora, prepare, fallback = (_vision if kind == "image" else _text)(choice)
    count = int(getattr(neat, "num_classes", 0) or neat.config.num_labels)
    labels = _labels(choice.labels, count, fallback)
    return (Classifier("NEAT", neat, labels, prepare, neat_core.trainable_parameters(neat)),
            Classifier("LoRA", lora, labels, prepare, _trainable(lora)))


def load_pair(kind: str, choice: Choice) -> tuple[Classifier, Classifier]:
    """The NEAT and the LoRA classifier for `choice` ("image": timm, "text": transformers), cached."""
    with _LOCK:
        return _load(kind, Choice(*(s.strip() for s in (choice.base, choice.neat, choice.lora, choice.labels))))
