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
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.flags import device_value, names, nonnegative_int, positive_int
from ..core.results import versions, write_json_atomic

ALL_METHODS = ["floor", "head", "full", "lora", "peanut", "dora", "fourierft", "neat"]
TARGET_CHOICES = ("all", "qkv")   # timing.VISION_TARGETS / LLM_TARGETS


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
    p.add_argument("--batch", type=positive_int, help="batch size (default: 64 on CUDA, 4 on CPU; --llm: 4)")
    p.add_argument("--targets", choices=TARGET_CHOICES, default="qkv",
                   help="qkv: attn.qkv (q_proj,k_proj,v_proj for --llm); all: attention and MLP linears")
    p.add_argument("--rank", type=positive_int, default=8, help="rank of every adapter method (LoRA alpha = rank)")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help=f"comma list from {', '.join(ALL_METHODS)}")
    p.add_argument("--steps", type=positive_int, help="timed steps (default 50 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=nonnegative_int, help="untimed steps first (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--llm", action="store_true", help="LLaMA-shaped decoder layers instead of a timm model")
    p.add_argument("--device", type=device_value, help="torch device: cpu, cuda or cuda:N (default cuda when "
                                                       "available); one this machine lacks is refused at once")
    p.add_argument("--out", default="results/speed", help="folder for the JSON result")
    p.add_argument("--dry-run", action="store_true", help="list the plan (the case, the methods with their exact "
                   "trainable parameters, steps) without timing anything")
    args = p.parse_args(argv)
    args.methods = names(args.methods)
    unknown = [m for m in args.methods if m not in ALL_METHODS]
    if unknown:
        p.error(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(ALL_METHODS)}")
    return args


def plan(case, args: argparse.Namespace, device, steps: int, warmup: int) -> str:
    """The dry run: what would be timed, and each method's exact trainable parameters."""
    from .timing import planned_parameters

    counts = planned_parameters(case, args.methods, args.targets, args.rank)
    lines = [f"Plan: {case.name}, targets {args.targets} ({', '.join(case.targets[args.targets])}), rank {args.rank}, "
             f"{'compiled' if args.compile else 'eager'}, on {device}: {warmup} untimed then {steps} timed steps of "
             "training per method, then unmerged and merged inference.", "",
             "| method | trainable params |", "|---|---:|"]
    return "\n".join(lines + [f"| {m} | {n:,} |" for m, n in counts.items()])


def make_case(args: argparse.Namespace, cuda: bool):
    from .timing import llm_case, vision_case

    if args.llm:
        hidden, layers, seq = (4096, 4, 512) if cuda else (128, 2, 32)
        return llm_case(hidden, layers, seq, args.batch or 4)
    if args.model or cuda:
        return vision_case(args.model or "vit_base_patch16_224", args.batch or (64 if cuda else 4), {})
    tiny = dict(img_size=32, patch_size=8, depth=2, num_classes=10)
    return vision_case("vit_tiny_patch16_224", args.batch or 4, tiny)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch   # only after the flags are valid

    from ..core.errors import SetupError
    from ..core.flags import check_device_loaded
    from .timing import measure, ratios

    try:
        check_device_loaded(args.device)
    except SetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    steps, warmup = args.steps or (50 if cuda else 3), args.warmup if args.warmup is not None else (10 if cuda else 1)
    case = make_case(args, cuda)
    if args.dry_run:
        print(plan(case, args, device, steps, warmup))
        return 0
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
