"""The one run loop: a suite's plan is a list of `Job`s; `run_suite` skips the finished ones, prepares what the rest
share (data, model source, tokenizer) once, runs each job, writes its result atomically as it finishes, and writes
the report at the end. A killed sweep loses nothing finished and resumes per run.

    suite command line -> plan(args, world) -> [Job] -> unfinished -> prepare -> run_job (core.loop) -> result
    file (core.results) -> report (core.report, or the suite's)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import MethodOptions
from .recipe import Recipe
from .results import adapter_dir, read_result, result_path, write_json_atomic
from .sources import Sources
from .sweep import Run


@dataclass(frozen=True)
class Job:
    """One run with everything it trains with: the run (its method may be a study's variant name), the registered
    method that builds it, its recipe at run.lr (the recipe keeps its grid), its method options, the micro-batch
    and accumulation that make the recipe's batch, and more entries for the result's config."""

    run: Run
    method: str
    recipe: Recipe
    options: MethodOptions
    micro_batch: int = 1
    grad_accum: int = 1
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> tuple[float, ...]:
        return self.recipe.grid


def world_size() -> int:
    """The processes a launcher started (for a dry run's batches), read without joining a process group."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def unfinished(out: str | os.PathLike, jobs: list[Job], accelerator) -> list[Job]:
    """The jobs without a result under `out` (the main process's view decides for every process); says how many
    are skipped."""
    from accelerate.utils import broadcast_object_list

    todo = [j for j in jobs if read_result(result_path(out, j.run)) is None]
    if accelerator.num_processes > 1:
        shared = [[j.run for j in todo]]
        broadcast_object_list(shared)
        runs = set(shared[0])
        todo = [j for j in jobs if j.run in runs]
    if accelerator.is_main_process and len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished in {out}; skipping them.")
    return todo


def summary_line(result: dict[str, Any], detail: str) -> str:
    run = Run(result["method"], result["dataset"], result["seed"], result["lr"])
    lr = f" lr {run.lr:g}" if run.lr is not None else ""
    return (f"{run.method} on {run.dataset} seed {run.seed}{lr}: {detail}, {result['method_params']:,} trainable + "
            f"{result['head_params']:,} head, {result['wall_seconds']:.1f} s")


def run_suite(args: argparse.Namespace, jobs: list[Job], accelerator, *, prepare: Callable[[list[Job], Sources], Any],
              run_job: Callable[[Job, Any], dict[str, Any]], summary: Callable[[dict[str, Any]], str],
              report: Callable[[str | os.PathLike], tuple[Path, Path, str]]) -> int:
    """Run every unfinished job of `jobs` (`prepare(todo, sources)` makes what they share, once, only when there are
    any, so a finished sweep needs neither data nor network, and loads its data and model at the commits `sources`
    resolves; once it has verified them, the main process records those commits in OUT's lock file); the main
    process writes each result as it finishes and prints its summary line, then writes and prints the report."""
    todo = unfinished(args.out, jobs, accelerator)
    shared = None
    if todo:
        sources = Sources.of_run(args)
        shared = prepare(todo, sources)
        if accelerator.is_main_process:
            sources.write_lock()   # the data passed verification
    for job in todo:
        result = run_job(job, shared)
        if accelerator.is_main_process:
            write_json_atomic(result_path(args.out, job.run), result)
            print(summary_line(result, summary(result)))
    if accelerator.is_main_process:
        table, plot, text = report(args.out)
        print("\n" + text)
        print(f"\nreport: {table}\nplot:   {plot}")
    accelerator.wait_for_everyone()
    return 0


def saved_adapter(args: argparse.Namespace, job: Job, model, accelerator) -> dict[str, str]:
    """{"adapter_path": ...} after the main process saved the trained adapter, when --save-adapters names the
    method."""
    if job.run.method not in args.save_adapters:
        return {}
    from .methods import save_adapter

    path = adapter_dir(args.out, job.run)
    if accelerator.is_main_process:
        save_adapter(job.run.method, accelerator.unwrap_model(model), path)
    accelerator.wait_for_everyone()
    return {"adapter_path": str(path)}


def provenance(accelerator) -> dict[str, Any]:
    """What produced a result: software versions and the device."""
    import platform

    import torch

    from .results import versions

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"versions": versions(),
            "device": {"type": device.type, "name": name, "world_size": accelerator.num_processes,
                       "cpu_count": os.cpu_count(), "distributed": accelerator.distributed_type.name,
                       "mixed_precision": accelerator.mixed_precision}}


def progress_bars(enabled: bool) -> None:
    """--no-progress: no bars from the loop (it asks `args.no_progress`) nor from the libraries it drives
    (`datasets` downloads and maps, transformers' downloads and loading)."""
    if enabled:
        return
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def main_guarded(run: Callable[[argparse.Namespace], int], args: argparse.Namespace,
                 expected: tuple[type[Exception], ...]) -> int:
    """run(args); an `expected` error (missing data or weights, a setup that cannot work) is one line on stderr and
    exit status 2. With --no-progress, the libraries' progress bars are off too."""
    try:
        progress_bars(not getattr(args, "no_progress", False))
        return run(args)
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
