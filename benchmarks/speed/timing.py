"""What benchmarks.speed measures: the models to time (a timm ViT or LLaMA-shaped decoder layers), every
method built on the same targets and rank, the median train step, peak memory, unmerged and merged inference."""

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

from ..core import methods as M
from ..core.catalog import MethodOptions

MERGEABLE = {"neat", "lora", "peanut", "dora"}
ADAPTERS = MERGEABLE | {"fourierft"}  # methods with an unmerged adapter forward to time
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

    with torch.device("meta"):   # only its input size and classes are read: no weights
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
    options = MethodOptions(targets=tuple(targets), rank=rank, lora_r=rank, lora_alpha=rank, lora_dropout=0.0)
    return M.build(method, model, options)


def planned_parameters(case: Case, methods: list[str], targets: str, rank: int) -> dict[str, int]:
    """Each method's trainable parameters on this case, counted on the meta device (no weights, no time)."""
    with torch.device("meta"):
        return {method: neat_core.trainable_parameters(build_method(case, method, case.targets[targets], rank))
                for method in methods}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    """bf16 autocast on a GPU over fp32 weights (the suites' policy), nothing on a CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _median_ms(runs: dict[str, Callable[[], None]], steps: int, warmup: int, device: torch.device,
               label: str) -> dict[str, float]:
    """Median ms of each run over `steps` after `warmup`; several runs take their steps in turn, so that a machine
    getting busier or quieter during the measurement slows them alike (ratios between them stay fair)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in tqdm(range(warmup + steps), desc=label, leave=False):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


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
    ms = _median_ms({label: step}, steps, warmup, device, label)[label]
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return ms, peak


def merged(method: str, model: nn.Module) -> nn.Module:
    """The plain model after merging the method's update into the weights."""
    if method == "neat":
        return neat_core.merge_and_unload(model)
    return model.merge_and_unload()


def time_inference(case: Case, models: dict[str, nn.Module], device: torch.device, steps: int, warmup: int,
                   label: str) -> dict[str, float]:
    """Median ms of an inference forward (eval, no grad) of each model, the models taking their steps in turn."""
    x, y = case.batch(device)

    def forward(model: nn.Module) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad(), autocast(device):
                case.loss(model, x, y)
        return step

    return _median_ms({name: forward(model.eval()) for name, model in models.items()}, steps, warmup, device, label)


def measure(case: Case, methods: list[str], targets: str, rank: int, device: torch.device, steps: int,
            warmup: int, compile_model: bool) -> dict[str, dict[str, Any]]:
    """Train steps one method at a time; then unmerged inference of the adapter methods, and merged inference with
    the base model, each group timed in turn (the trained models wait on the CPU meanwhile)."""
    rows: dict[str, dict[str, Any]] = {}
    kept: dict[str, nn.Module] = {}
    for method in methods:
        model = build_method(case, method, case.targets[targets], rank).to(device)
        trainable = neat_core.trainable_parameters(model)
        ms, peak = time_training(case, model, device, steps, warmup, compile_model, f"{method} train")
        rows[method] = {"step_ms": ms, "peak_mib": peak, "trainable_params": trainable}
        if method in ADAPTERS:
            kept[method] = model.cpu()
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not kept:
        return rows
    unmerged = {method: model.to(device) for method, model in kept.items()}
    for method, ms in time_inference(case, unmerged, device, steps, warmup, "unmerged inference").items():
        rows[method]["unmerged_inference_ms"] = ms
    plain = {method: merged(method, model) for method, model in unmerged.items() if method in MERGEABLE}
    if plain:
        base = build_method(case, "floor", [], rank).to(device)
        times = time_inference(case, {"base": base, **plain}, device, steps, warmup, "merged inference")
        for method in plain:
            rows[method]["merged_inference_ms"] = times[method]
            rows[method]["merged_over_base"] = times[method] / times["base"]
    return rows


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """NEAT's train step, peak memory and unmerged inference over the references measured in the same run."""
    if "neat" not in rows:
        return {}
    neat = rows["neat"]["step_ms"]
    found = {f"neat_over_{ref}": neat / rows[ref]["step_ms"] for ref in ("lora", "peanut", "floor") if ref in rows}
    if "lora" in rows and rows["neat"]["peak_mib"] is not None:
        found["neat_peak_over_lora_peak"] = rows["neat"]["peak_mib"] / rows["lora"]["peak_mib"]
    if "lora" in rows:
        found["neat_unmerged_over_lora_unmerged"] = (rows["neat"]["unmerged_inference_ms"]
                                                     / rows["lora"]["unmerged_inference_ms"])
    return found
