"""make gpu-check: refused at once without a GPU (the module and the make target), its parts fit eight minutes, and
its report reads the speed results as ratios to LoRA."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from benchmarks import gpu_check

ROOT = Path(__file__).parents[2]
MESSAGE = ("error: gpu-check needs a CUDA GPU and this machine has none (no NVIDIA device files, or "
           "CUDA_VISIBLE_DEVICES hides them). Run it on a machine with one CUDA GPU.")


@pytest.mark.slow
@pytest.mark.parametrize("command", [[sys.executable, "-m", "benchmarks.gpu_check"],
                                     ["make", "--no-print-directory", "gpu-check"]])
def test_without_a_gpu_it_says_so_at_once_and_exits_non_zero(command, tmp_path):
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode != 0 and MESSAGE in done.stderr
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "results").exists()


def test_the_parts_fit_eight_minutes_and_cover_what_the_check_promises():
    parts = gpu_check.parts()
    assert sum(p.limit_s for p in parts) <= 8 * 60
    names = [p.name for p in parts]
    assert names == ["cuda tests", "speed ViT-B/16 qkv eager", "speed ViT-B/16 qkv compiled", "speed ViT-B/16 all eager",
                     "speed ViT-B/16 all compiled", "speed LLaMA-7B-shaped layers", "vtab smoke (CUDA, bf16)",
                     "llm smoke (CUDA, bf16)"]
    vit = parts[1].command(Path("out"))
    assert vit[1:3] == ["-m", "benchmarks.speed"] and " ".join(vit).endswith("--out out/speed")
    assert {"--batch", "64", "--rank", "16", "--targets", "qkv"} <= set(vit) and "--compile" in parts[2].argv
    assert {"--llm", "--batch", "4", "--rank", "32"} <= set(parts[5].argv)


def test_the_report_reads_speed_results_as_ratios_to_lora():
    speed = {"case": "vit_base_patch16_224 bs64 224px", "targets": "qkv", "compiled": False,
             "methods": {"lora": {"step_ms": 100.0, "peak_mib": 2000.0, "unmerged_inference_ms": 20.0},
                         "neat": {"step_ms": 80.0, "peak_mib": 1800.0, "unmerged_inference_ms": 22.0},
                         "floor": {"step_ms": 70.0, "peak_mib": 1500.0}}}
    done = gpu_check.Outcome(gpu_check.parts()[1], "ok", 12.0, "", speed)
    failed = gpu_check.Outcome(gpu_check.parts()[6], "timed out", 60.0, "last words")
    text = gpu_check.report([done, failed], {"name": "NVIDIA H200", "memory_gib": 139.8, "torch": "2.x", "cuda": "13.0",
                                             "date": "2026-12-04"})
    assert "| vit_base_patch16_224 bs64 224px, qkv, eager | neat | 80.0 | 0.80 | 1800.0 | 0.90 | 22.0 | 1.10 |" in text
    assert "| vit_base_patch16_224 bs64 224px, qkv, eager | floor | 70.0 | 0.70 | 1500.0 | 0.75 | — | — |" in text
    assert "| vtab smoke (CUDA, bf16) | timed out | 60 |" in text and "last words" in text
    assert text.startswith("# GPU check\n\nNVIDIA H200 (140 GiB), torch 2.x (CUDA 13.0), 2026-12-04.")


@pytest.mark.slow
def test_a_part_that_runs_out_of_time_reports_what_it_printed_on_both_streams(tmp_path):
    script = "import sys, time; print('to stdout', flush=True); print('to stderr', file=sys.stderr, flush=True); " \
             "time.sleep(30)"
    part = gpu_check.Part("slow part", "pytest", (), 1)
    part_command = [sys.executable, "-c", script]
    with mock.patch.object(gpu_check.Part, "command", lambda self, out: part_command):
        outcome = gpu_check.run_part(part, tmp_path, limit=1.5)
    assert outcome.status == "timed out"
    assert "to stdout\n" in outcome.tail and "to stderr\n" in outcome.tail and "b'" not in outcome.tail
