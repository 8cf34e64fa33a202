"""`make gpu-check` (`python -m benchmarks.gpu_check`): what works on a machine with one CUDA GPU, in one command, with
no network, in about eight minutes; written to OUT/report.md and OUT/gpu-check.json (default results/gpu-check).

Parts, each a subprocess with its own time limit (a part that fails or runs out of time is reported, the others
still run):
  cuda tests    the test suite's tests marked `cuda` (pytest -m cuda)
  speed ViT     benchmarks.speed on ViT-B/16, batch 64, bf16 autocast, rank 16: targets attn.qkv and attention + MLP,
                eager and torch.compile; NEAT, PEFT LoRA, PEFT PEANuT and the frozen floor
  speed LLaMA   benchmarks.speed --llm: four LLaMA-7B-shaped decoder layers, sequence 512, batch 4, rank 32
  vtab smoke    the image smoke suite on the GPU (bf16 autocast)
  llm smoke     the reasoning smoke suite on the GPU (bf16 weights), NEAT and LoRA on its three tasks
The speed figures are ratios to LoRA measured in the same run (step time, peak memory, unmerged inference): a ratio
below 1 means NEAT is faster or smaller than LoRA on that GPU. Without a GPU it says so at once and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .core.flags import visible_cuda_devices

VIT = ["--model", "vit_base_patch16_224", "--batch", "64", "--rank", "16", "--steps", "20", "--warmup", "5"]
EAGER, COMPILED = "floor,lora,peanut,neat", "lora,neat"   # compiling every method would not fit the time
LLM_SMOKE_METHODS = "neat,lora"   # every task's path (commonsense, math, metamathqa) for NEAT and a PEFT method
LLAMA = ["--llm", "--batch", "4", "--rank", "32", "--methods", "floor,lora,neat", "--targets", "all", "--steps", "10",
         "--warmup", "3"]


@dataclass(frozen=True)
class Part:
    """One check: its name, the command (a module of this project run with this Python, and its arguments), its time
    limit, and the folder under OUT it writes."""

    name: str
    module: str
    argv: tuple[str, ...]
    limit_s: int
    folder: str = ""
    speed: bool = False

    def command(self, out: Path) -> list[str]:
        argv = [a.replace("{out}", str(out / self.folder)) for a in self.argv]
        return [sys.executable, "-m", self.module, *argv]


def parts() -> list[Part]:
    speed = [Part(f"speed ViT-B/16 {targets} {mode}", "benchmarks.speed",
                  (*VIT, "--targets", targets, "--methods", EAGER if mode == "eager" else COMPILED,
                   *(["--compile"] if mode == "compiled" else []), "--out", "{out}"),
                  limit if mode == "eager" else limit * 5 // 2, "speed", speed=True)
             for targets, limit in (("qkv", 30), ("all", 35)) for mode in ("eager", "compiled")]
    return [   # the limits add up to 472 s: eight minutes with the start-up of each
        Part("cuda tests", "pytest", ("-m", "cuda", "-q", "-p", "no:cacheprovider", "tests"), 40),
        *speed,
        Part("speed LLaMA-7B-shaped layers", "benchmarks.speed", (*LLAMA, "--out", "{out}"), 55, "speed", speed=True),
        Part("vtab smoke (CUDA, bf16)", "benchmarks.vtab", ("--suite", "smoke", "--device", "cuda", "--no-progress",
                                                             "--out", "{out}"), 60, "vtab-smoke"),
        Part("llm smoke (CUDA, bf16)", "benchmarks.llm", ("--suite", "smoke", "--method", LLM_SMOKE_METHODS, "--device",
                                                           "cuda", "--dtype", "bf16", "--no-progress", "--out", "{out}"),
             90, "llm-smoke"),
    ]


@dataclass
class Outcome:
    part: Part
    status: str            # "ok", "failed (exit N)", "timed out"
    seconds: float
    tail: str
    speed: dict[str, Any] = field(default_factory=dict)


def _text(output: bytes | str | None) -> str:
    """A killed part's output: TimeoutExpired carries bytes even when the run asked for text."""
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_part(part: Part, out: Path, limit: float) -> Outcome:
    """Run one part under its limit; a speed part's JSON (the newest in its folder) is read back."""
    (out / part.folder).mkdir(parents=True, exist_ok=True)
    before = set((out / part.folder).glob("*.json"))
    start = time.perf_counter()
    try:
        done = subprocess.run(part.command(out), capture_output=True, text=True, timeout=limit,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        tail = (done.stdout + done.stderr)[-1500:]
    except subprocess.TimeoutExpired as err:
        status, tail = "timed out", "".join(_text(x) for x in (err.stdout, err.stderr))[-1500:]
    seconds = time.perf_counter() - start
    speed = {}
    if part.speed and status == "ok":
        written = sorted(set((out / part.folder).glob("*.json")) - before, key=lambda p: p.stat().st_mtime)
        speed = json.loads(written[-1].read_text()) if written else {}
    return Outcome(part, status, seconds, tail, speed)


def ratio_rows(outcomes: list[Outcome]) -> list[str]:
    """One row per (speed case, method): step time, peak memory and unmerged inference over LoRA's."""
    lines = ["| case | method | train step ms | vs LoRA | peak MiB | vs LoRA | unmerged inference ms | vs LoRA |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for o in outcomes:
        rows = o.speed.get("methods") or {}
        lora = rows.get("lora")
        if not lora:
            continue
        case = f"{o.speed['case']}, {o.speed['targets']}, {'compiled' if o.speed['compiled'] else 'eager'}"
        for method, r in rows.items():
            def cell(key: str) -> tuple[str, str]:
                mine, ref = r.get(key), lora.get(key)
                if mine is None:
                    return "—", "—"
                return f"{mine:.1f}", (f"{mine / ref:.2f}" if ref else "—")
            step, peak, infer = cell("step_ms"), cell("peak_mib"), cell("unmerged_inference_ms")
            lines.append(f"| {case} | {method} | {step[0]} | {step[1]} | {peak[0]} | {peak[1]} | {infer[0]} | "
                         f"{infer[1]} |")
    return lines


def report(outcomes: list[Outcome], device: dict[str, Any]) -> str:
    lines = ["# GPU check", "", f"{device['name']} ({device['memory_gib']:.0f} GiB), torch {device['torch']} (CUDA "
             f"{device['cuda']}), {device['date']}.", "", "| part | status | seconds |", "|---|---|---:|"]
    lines += [f"| {o.part.name} | {o.status} | {o.seconds:.0f} |" for o in outcomes]
    lines += ["", "## Speed, as ratios to PEFT LoRA measured in the same run", "",
              "bf16 autocast over fp32 trainable weights; below 1: NEAT (or the method) is faster or smaller than "
              "LoRA. floor: every weight frozen, the input requires grad (the backward no adapter method avoids).", ""]
    lines += ratio_rows(outcomes)
    for o in outcomes:
        if o.status != "ok":
            lines += ["", f"## {o.part.name}: {o.status}", "", "```", o.tail.strip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/gpu-check", help="folder for report.md and gpu-check.json")
    args = p.parse_args(argv)
    if not visible_cuda_devices():
        print("error: gpu-check needs a CUDA GPU and this machine has none (no NVIDIA device files, or "
              "CUDA_VISIBLE_DEVICES hides them). Run it on a machine with one CUDA GPU.", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print(f"error: gpu-check needs a CUDA GPU and torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}) "
              "cannot use one here: install a CUDA build of torch.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    properties = torch.cuda.get_device_properties(0)
    device = {"name": torch.cuda.get_device_name(0), "memory_gib": properties.total_memory / 2**30,
              "torch": torch.__version__, "cuda": torch.version.cuda,
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    outcomes = []
    for part in parts():
        print(f"gpu-check: {part.name} (at most {part.limit_s} s)", flush=True)
        outcomes.append(run_part(part, out, part.limit_s))
        print(f"gpu-check: {part.name}: {outcomes[-1].status} in {outcomes[-1].seconds:.0f} s", flush=True)
    from .core.results import write_json_atomic, write_text_atomic

    text = report(outcomes, device)
    write_text_atomic(out / "report.md", text)
    write_json_atomic(out / "gpu-check.json", {
        "device": device, "parts": [{"name": o.part.name, "command": o.part.command(out), "status": o.status,
                                     "seconds": o.seconds, "speed": o.speed} for o in outcomes]})
    print("\n" + text + f"\nwrote {out / 'report.md'} and {out / 'gpu-check.json'}")
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
