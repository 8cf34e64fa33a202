"""Reasoning suite: `python -m benchmarks.llm --task commonsense --method neat,lora --model meta-llama/Llama-2-7b-hf`.

The NEAT paper's LLM experiments: a LLaMA-class decoder fine-tuned on Commonsense170K and tested on BoolQ, PIQA,
SIQA, HellaSwag, WinoGrande, ARC-e, ARC-c and OBQA (task commonsense), or fine-tuned on MetaMathQA and tested
on GSM8K and MATH (task math), with NEAT against LoRA, DoRA, PiSSA, MiLoRA and PEANuT on the same layers
(q, k, v, up, down). Recipes and decoding follow the lineage's scripts (benchmarks/llm_recipes.py). Answers are
generated (greedy or beam search, batched, KV cache) and read per task; the report shows accuracy per test set
and the average beside the published numbers.

suites: paper (default: commonsense, every method, Llama-2-7B; needs a GPU and the Hub or --data-dir /
--model-path) and smoke (a tiny random LLaMA and generated data in the real files' layouts: the whole path on a
CPU in a couple of minutes; a pipeline check, not the paper's numbers).
Each (method, task, seed) writes OUT/runs/<method>_<task>_seed<seed>.json atomically and a rerun skips finished
ones. Several GPUs or machines: `accelerate launch --config_file configs/accelerate/ddp.yaml -m benchmarks.llm ...`
(or fsdp.yaml); bf16 weights, fp32 adapters and gradient checkpointing on GPUs.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .cli import DEFAULT_CACHE, names, seed_list
from .llm_recipes import (METHODS, SMOKE_PRETRAIN_EPOCHS, SUITES, TASK_SETTINGS, TASK_TESTS, LLMRecipe, SetupError,
                          TaskSetting, recipe_for, smoke_recipe, smoke_setting)

RECIPE_FLAGS = {"lr": float, "epochs": int, "batch_size": int, "micro_batch_size": int, "warmup_steps": int,
                "rank": int, "alpha": float, "scale": float, "dropout": float}
SETTING_FLAGS = {"cutoff_len": int, "num_beams": int, "max_new_tokens": int}


def _check(chosen: list[str], known: tuple[str, ...] | list[str], what: str) -> list[str]:
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ValueError(f"Unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}.")
    if not chosen:
        raise ValueError(f"Name at least one {what.rstrip('(s)')}.")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags, checked against the recipe tables without importing torch (a bad flag fails at once)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.llm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default tasks, methods and model")
    p.add_argument("--task", "--tasks", dest="tasks", help=f"comma list of {', '.join(TASK_TESTS)}")
    p.add_argument("--method", "--methods", dest="methods", help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--tests", help="comma list of test sets (default: all of each task's)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (mean ± std in the report)")
    p.add_argument("--out", help="results folder (default results/llm/<suite>)")
    p.add_argument("--model", help="transformers causal LM name (default: the suite's)")
    p.add_argument("--model-path", help="a local transformers folder (save_pretrained) with the model and tokenizer")
    p.add_argument("--data-dir", help="local data instead of the Hub (LLM-Adapters' layout; see neat_text.reasoning)")
    p.add_argument("--targets", help="comma list of module names every method adapts (default q_proj,k_proj,v_proj,"
                                     "up_proj,down_proj: NEAT's paper_llm preset)")
    for name, kind in {**RECIPE_FLAGS, **SETTING_FLAGS}.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="override the recipe table's value")
    p.add_argument("--eval-batch-size", type=int, help="prompts per generation batch (default 16 on a GPU, 8 on CPU)")
    p.add_argument("--eval-limit", type=int, help="answer only the first N examples of each test set (quick checks)")
    p.add_argument("--max-steps", type=int, help="stop training after N optimizer steps (speed measurements)")
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto",
                   help="base weights (auto: bf16 on a GPU, fp32 on CPU); adapters stay fp32")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                   help="recompute activations in the backward (default: on with a GPU)")
    p.add_argument("--save-adapters", help="comma list of methods whose adapters are saved under OUT/adapters/ "
                                           "(default: the suite's; 'none' for none)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                   help="smoke suite: where the generated assets are cached")
    p.add_argument("--pretrain-epochs", type=int, default=SMOKE_PRETRAIN_EPOCHS,
                   help="smoke suite: epochs of pre-training the tiny LLaMA on the generated prompts (0: random weights)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the suite's, else torch's)")
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when available")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    try:
        args.tasks = _check(names(args.tasks) if args.tasks else list(suite.tasks), tuple(TASK_TESTS), "task(s)")
        args.methods = _check(names(args.methods) if args.methods else list(suite.methods), METHODS, "method(s)")
        every_test = [t for task in args.tasks for t in TASK_TESTS[task]]
        args.tests = _check(names(args.tests), every_test, "test set(s)") if args.tests else None
        args.save_adapters = (list(suite.save_adapters) if args.save_adapters is None else
                              [] if args.save_adapters == "none" else _check(names(args.save_adapters), METHODS,
                                                                             "method(s)"))
        args.seeds = seed_list(args.seeds)
        args.targets = tuple(names(args.targets)) if args.targets else None
        positive = [f for f in (*RECIPE_FLAGS, *SETTING_FLAGS, "eval_batch_size", "eval_limit", "max_steps", "threads")
                    if getattr(args, f) is not None and getattr(args, f) <= 0 and f != "dropout"]
        if positive:
            raise ValueError(f"--{positive[0].replace('_', '-')} must be positive.")
        for flag in ("model_path", "data_dir"):
            if getattr(args, flag) and not Path(getattr(args, flag)).exists():
                raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)} does not exist.")
    except ValueError as err:
        p.error(str(err))
    args.out = args.out or str(Path("results") / "llm" / args.suite)
    return args


def recipe(args: argparse.Namespace, task: str, method: str, model: str) -> LLMRecipe:
    """The table's recipe (smoke: shrunk), then the recipe values given on the command line."""
    base = recipe_for(task, method, model)
    base = smoke_recipe(base) if args.suite == "smoke" else base
    return replace(base, **{k: getattr(args, k) for k in RECIPE_FLAGS if getattr(args, k) is not None})


def setting(args: argparse.Namespace, task: str) -> TaskSetting:
    """The task's shared setting (smoke: shrunk), then the command line's cutoff and decoding values."""
    base = TASK_SETTINGS[task]
    base = smoke_setting(base) if args.suite == "smoke" else base
    given = {k: getattr(args, k) for k in ("cutoff_len", "num_beams") if getattr(args, k) is not None}
    if args.max_new_tokens is not None:
        given["max_new_tokens"] = {t: args.max_new_tokens for t in base.max_new_tokens}
    return replace(base, **given)


def _summary(r: dict[str, Any]) -> str:
    tests = ", ".join(f"{t} {s['accuracy']:.3f}" for t, s in r["tests"].items())
    return (f"{r['method']} on {r['dataset']} seed {r['seed']}: accuracy {r['accuracy']:.4f} ({tests}), "
            f"{r['trainable_params']:,} trainable, {r['train_tokens_per_s']:.0f} train tokens/s, "
            f"{r['wall_seconds']:.1f} s")


def run(args: argparse.Namespace) -> int:
    import torch
    from accelerate import Accelerator

    from neat_text.reasoning import get_task

    from . import llm_setup as S
    from .cli import unfinished
    from .llm_job import run_job
    from .llm_report import write_llm_report
    from .results import result_path, write_json_atomic
    from .sweep import Run
    from .train import Dist

    threads = args.threads or SUITES[args.suite].threads
    if threads:
        torch.set_num_threads(threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    dtype = torch.bfloat16 if args.dtype == "bf16" or (args.dtype == "auto" and cuda) else torch.float32
    mixed = os.environ.get("ACCELERATE_MIXED_PRECISION") or ("bf16" if cuda and dtype == torch.bfloat16 else "no")
    accelerator = Accelerator(cpu=not cuda, mixed_precision=mixed)
    dist = Dist(accelerator.process_index, accelerator.num_processes)
    jobs = [Run(m, t, s, None) for t in args.tasks for m in args.methods for s in args.seeds]
    todo = [(r.method, r.dataset, r.seed) for r in unfinished(args.out, jobs, dist)]
    if todo:
        with accelerator.main_process_first():  # the smoke assets are made once
            source, data_dir = S.sources(args)
        S.check_network(data_dir, args.tasks[0])
        tokenizer = S.tokenizer(source)
        S.check_model(source, args.targets)
        recipes = {(m, t): recipe(args, t, m, source.name) for m, t, _ in todo}
        S.check_batches(recipes.values(), accelerator.num_processes)
        settings = {t: setting(args, t) for t in args.tasks}
        data = {t: S.task_data(get_task(t), data_dir, args, tokenizer, settings[t]) for t in dict.fromkeys(
            t for _, t, _ in todo)}
        options = S.job_options(args, source, data_dir, dtype, cuda)
    for method, task, seed in todo:
        result = run_job(method, get_task(task), seed, recipes[method, task], settings[task], data[task], tokenizer,
                         accelerator, options)
        if accelerator.is_main_process:
            write_json_atomic(result_path(args.out, method, task, seed), result)
            print(_summary(result))
    if accelerator.is_main_process:
        table, plot, _ = write_llm_report(args.out)
        print("\n" + table.read_text())
        print(f"report: {table}\nplot:   {plot}")
    accelerator.wait_for_everyone()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from neat_text.reasoning import ReasoningDataError

    from .cli import main_guarded
    from .models import ModelUnavailableError

    return main_guarded(run, args, (ReasoningDataError, ModelUnavailableError, SetupError))


if __name__ == "__main__":
    sys.exit(main())

