"""`python -m benchmarks.speed`: train-step time, peak memory, unmerged and merged inference of every method.

For each method on the same targets and rank (random weights: speed does not depend on them) it measures the
median train step (forward + backward + AdamW) over `--steps` steps after `--warmup`, the peak GPU memory, for the
adapter methods the median unmerged inference forward (eval, no grad: NEAT from its cached factors), and for the
methods that merge, inference after merging against the base model. "floor" freezes every weight and makes the
input require grad: the backward no adapter method can avoid. Ratios NEAT/LoRA, NEAT/PEANuT, NEAT/floor and
unmerged NEAT/unmerged LoRA inference come from the same run; the inference forwards of all methods are timed in
turn (one step of each, then the next round), so that a shared machine's load changes hit them alike. On a
machine without CUDA the defaults shrink to a tiny model so that the whole table runs in seconds (a pipeline
check, not a measurement to quote).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import neat_core

from . import methods as M
from .results import versions, write_json_atomic
from .train import autocast, synchronize

ALL_METHODS = ["floor", "head", "full", "lora", "peanut", "dora", "fourierft", "neat"]
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


def table(rows: dict[str, dict[str, Any]]) -> str:
    floor = rows.get("floor", {}).get("step_ms")
    lines = ["| method | trainable params | train step ms | vs floor | peak MiB | unmerged inference ms | "
             "merged inference vs base |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for method, r in rows.items():
        vs = f"{r['step_ms'] / floor:.2f}x" if floor else "—"
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "—"
        unmerged = f"{r['unmerged_inference_ms']:.1f}" if "unmerged_inference_ms" in r else "—"
        inf = f"{r['merged_over_base']:.3f}x" if "merged_over_base" in r else "—"
        lines.append(f"| {method} | {r['trainable_params']:,} | {r['step_ms']:.1f} | {vs} | {peak} | {unmerged} | "
                     f"{inf} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="timm model name (default: vit_base_patch16_224 on CUDA, a tiny ViT on CPU)")
    p.add_argument("--batch", type=int, help="batch size (default: 64 on CUDA, 4 on CPU; --llm: 4)")
    p.add_argument("--targets", choices=sorted(VISION_TARGETS), default="qkv",
                   help="qkv: attn.qkv (q_proj,k_proj,v_proj for --llm); all: attention and MLP linears")
    p.add_argument("--rank", type=int, default=8, help="rank of every adapter method (LoRA alpha = rank)")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help=f"comma list from {', '.join(ALL_METHODS)}")
    p.add_argument("--steps", type=int, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--llm", action="store_true", help="LLaMA-shaped decoder layers instead of a timm model")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="results/speed", help="folder for the JSON result")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in ALL_METHODS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    return args


def make_case(args: argparse.Namespace, cuda: bool) -> Case:
    if args.llm:
        hidden, layers, seq = (4096, 4, 512) if cuda else (128, 2, 32)
        return llm_case(hidden, layers, seq, args.batch or 4)
    if args.model or cuda:
        return vision_case(args.model or "vit_base_patch16_224", args.batch or 64, {})
    tiny = dict(img_size=32, patch_size=8, depth=2, num_classes=10)
    return vision_case("vit_tiny_patch16_224", args.batch or 4, tiny)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    steps, warmup = args.steps or (50 if cuda else 3), args.warmup if args.warmup is not None else (10 if cuda else 1)
    case = make_case(args, cuda)
    if not cuda:
        print("No CUDA device: timing on the CPU (a pipeline check; the targets are GPU ratios).")
    rows = measure(case, args.methods, args.targets, args.rank, device, steps, warmup, args.compile)
    found = ratios(rows)
    print(f"\n{case.name}, targets {args.targets}, rank {args.rank}, {'compiled' if args.compile else 'eager'}, "
          f"{device.type}\n")
    print(table(rows))
    for key, value in found.items():
        print(f"{key}: {value:.3f}")
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    result = {"case": case.name, "targets": args.targets, "rank": args.rank, "compiled": args.compile,
              "steps": steps, "warmup": warmup, "device": device_name, "versions": versions(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "methods": rows, "ratios": found}
    slug = "-".join([case.name.split()[0], args.targets, "compiled" if args.compile else "eager", device.type])
    path = write_json_atomic(Path(args.out) / f"{slug}.json", result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
