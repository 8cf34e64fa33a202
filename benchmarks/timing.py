"""What benchmarks.speed measures: the models to time (a timm ViT or LLaMA-shaped decoder layers), every
method built on the same targets and rank, the median train step, peak memory and merged inference."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import neat_core

from . import methods as M
from .train import autocast, synchronize

MERGEABLE = {"neat", "lora", "peanut", "dora"}
# --targets -> module-name suffixes, per case
VISION_TARGETS = {"qkv": ["attn.qkv"], "all": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]}
LLM_TARGETS = {"qkv": ["q_proj", "k_proj", "v_proj"],
               "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


@dataclass
class Case:
    """A model to time: how to build it, a batch, and the loss that a step minimises."""

    name: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.device], tuple[torch.Tensor, torch.Tensor | None]]
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor | None], torch.Tensor]
    targets: dict[str, list[str]]


def vision_case(model_name: str, batch: int, model_args: dict[str, Any]) -> Case:
    import timm

    def build() -> nn.Module:
        return timm.create_model(model_name, pretrained=False, **model_args)

    probe = build()
    size = probe.pretrained_cfg.get("input_size", (3, 224, 224))[-1] if "img_size" not in model_args \
        else model_args["img_size"]
    classes = probe.num_classes

    def make_batch(device: torch.device):
        gen = torch.Generator().manual_seed(0)
        images = torch.randn(batch, 3, size, size, generator=gen).to(device)
        return images, torch.randint(0, classes, (batch,), generator=gen).to(device)

    return Case(f"{model_name} bs{batch} {size}px", build, make_batch,
                lambda model, x, y: F.cross_entropy(model(x).float(), y), VISION_TARGETS)


def llm_case(hidden: int, layers: int, seq: int, batch: int) -> Case:
    """A few LLaMA-shaped decoder layers (random config), fed embeddings directly."""
    from transformers import LlamaConfig, LlamaModel

    config = LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 11 // 4, num_hidden_layers=layers,
                         num_attention_heads=max(1, hidden // 128), num_key_value_heads=max(1, hidden // 128),
                         vocab_size=128, max_position_embeddings=seq)

    def make_batch(device: torch.device):
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, seq, hidden, generator=gen).to(device), None

    def loss(model, x, _):
        return model(inputs_embeds=x).last_hidden_state.float().pow(2).mean()

    return Case(f"llama-like h{hidden} x{layers} seq{seq} bs{batch}", lambda: LlamaModel(config), make_batch,
                loss, LLM_TARGETS)


def build_method(case: Case, method: str, targets: list[str], rank: int) -> nn.Module:
    torch.manual_seed(0)
    model = case.build()
    if method == "floor":
        return model.requires_grad_(False)
    options = M.MethodOptions(targets=tuple(targets), rank=rank, lora_r=rank, lora_alpha=rank, lora_dropout=0.0)
    return M.build(method, model, options)


def _median_ms(run: Callable[[], None], steps: int, warmup: int, device: torch.device, label: str) -> float:
    times = []
    for i in tqdm(range(warmup + steps), desc=label, leave=False):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_training(case: Case, model: nn.Module, device: torch.device, steps: int, warmup: int,
                  compile_model: bool, label: str) -> tuple[float, float | None]:
    """(median train-step ms, peak memory MiB or None off CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4) if params else None
    x, y = case.batch(device)
    if not params:
        x.requires_grad_(True)  # floor: the backward through every layer, no weight gradients
    forward = torch.compile(model) if compile_model else model

    def step() -> None:
        with autocast(device):
            loss = case.loss(forward, x, y)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        x.grad = None

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ms = _median_ms(step, steps, warmup, device, label)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return ms, peak


def merged(method: str, model: nn.Module) -> nn.Module:
    """The plain model after merging the method's update into the weights."""
    if method == "neat":
        return neat_core.merge_and_unload(model)
    return model.merge_and_unload()


def time_inference(case: Case, model: nn.Module, device: torch.device, steps: int, warmup: int,
                   label: str) -> float:
    x, y = case.batch(device)
    model.eval()

    def step() -> None:
        with torch.no_grad(), autocast(device):
            case.loss(model, x, y)

    return _median_ms(step, steps, warmup, device, label)


def measure(case: Case, methods: list[str], targets: str, rank: int, device: torch.device, steps: int,
            warmup: int, compile_model: bool) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    base_ms = None
    for method in methods:
        model = build_method(case, method, case.targets[targets], rank).to(device)
        trainable = neat_core.trainable_parameters(model)
        ms, peak = time_training(case, model, device, steps, warmup, compile_model, f"{method} train")
        row = {"step_ms": ms, "peak_mib": peak, "trainable_params": trainable}
        if method in MERGEABLE:
            if base_ms is None:
                base = build_method(case, "floor", [], rank).to(device)
                base_ms = time_inference(case, base, device, steps, warmup, "base inference")
                del base
            plain = merged(method, model)
            row["merged_inference_ms"] = time_inference(case, plain, device, steps, warmup, f"{method} merged")
            row["merged_over_base"] = row["merged_inference_ms"] / base_ms
        rows[method] = row
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """NEAT's train step over the references measured in the same run."""
    if "neat" not in rows:
        return {}
    neat = rows["neat"]["step_ms"]
    found = {f"neat_over_{ref}": neat / rows[ref]["step_ms"] for ref in ("lora", "peanut", "floor") if ref in rows}
    if "lora" in rows and rows["neat"]["peak_mib"] is not None:
        found["neat_peak_over_lora_peak"] = rows["neat"]["peak_mib"] / rows["lora"]["peak_mib"]
    return found
