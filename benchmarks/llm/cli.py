"""Reasoning suite: `python -m benchmarks.llm --task commonsense --method neat,lora --model meta-llama/Llama-2-7b-hf`.

The NEAT paper's LLM experiments: a LLaMA-class decoder fine-tuned on Commonsense170K and tested on BoolQ, PIQA,
SIQA, HellaSwag, WinoGrande, ARC-e, ARC-c and OBQA (task commonsense), or fine-tuned on MetaMathQA and tested
on GSM8K and MATH (task math), with NEAT against LoRA, DoRA, PiSSA, MiLoRA and PEANuT on the same layers
(q, k, v, up, down); and PEFT's own MetaMathQA -> GSM8K benchmark (task metamathqa). Each method trains as the
source of its published row did, and NEAT as the rows it is compared with (benchmarks/llm/recipes.py). Answers are
generated (greedy or beam search, batched, KV cache) and read as each source reads them; the report shows
accuracy per test set and the average beside the published numbers.

suites: paper (default: commonsense, every method, Llama-2-7B, 3 seeds; needs a GPU and the Hub or --data-dir /
--model-path), peft-metamathqa (PEFT's benchmark: Llama-3.2-3B, NEAT beside LoRA, DoRA and PEANuT and PEFT's
published results) and smoke (a tiny random LLaMA and generated data in the real files' layouts: every path on a
CPU in a few minutes; a pipeline check, not the paper's numbers).
Each (method, task, seed, lr) writes OUT/runs/<method>_<task>_seed<seed>_lr<lr>.json atomically and a rerun skips
finished ones; --dry-run lists the plan. Several GPUs or machines: `accelerate launch --config_file
configs/accelerate/ddp.yaml -m benchmarks.llm ...` (or fsdp.yaml); on GPUs the precision the recipes' sources
trained in (one per run), fp32 adapters and gradient checkpointing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.flags import (DEFAULT_CACHE, add_option_flags, add_pin_flags, add_process_flags, add_run_flags,
                          add_save_flag, add_source_flags, add_sweep_flags, check_options, check_paths, check_pins,
                          chosen, names, nonnegative_int, positive_int, seed_list, suite_parser)
from .recipes import METHODS, PRECISIONS, RECIPES, SMOKE_PRETRAIN_EPOCHS, SUITES, TASK_TESTS, check_recipes

ONE_LR = ("--lrs: the reasoning suite trains one lr per run (each source publishes one, and its hold-out only picks "
          "the checkpoint, so no validation score chooses between lrs); pass --lr, or one value to --lrs.")
DATA_FLAGS = {"cutoff_len": positive_int, "num_beams": positive_int, "max_new_tokens": positive_int}
OPTION_SKIP = ("preset", "peft_target", "n_frequency", "fourier_scaling", "vera_r")


def _check(chosen_: list[str], known: tuple[str, ...] | list[str], what: str) -> list[str]:
    unknown = [c for c in chosen_ if c not in known]
    if unknown:
        raise ValueError(f"Unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}.")
    if not chosen_:
        raise ValueError(f"Name at least one {what.rstrip('(s)')}.")
    return chosen_


def parser() -> argparse.ArgumentParser:
    p = suite_parser("python -m benchmarks.llm", __doc__)
    p.add_argument("--suite", default="paper", choices=sorted(SUITES), help="default tasks, methods and model")
    p.add_argument("--rescore", metavar="FILE", help="score saved generations again, without a model: JSON lines "
                   "with test, generation, answer (or a run's predictions/<run>.json); prints each row with "
                   "prediction and correct (and the lenient reading) as JSON lines, the accuracy per test set on "
                   "stderr")
    p.add_argument("--task", "--tasks", dest="tasks", help=f"comma list of {', '.join(TASK_TESTS)}")
    p.add_argument("--method", "--methods", dest="methods", help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--tests", help="comma list of test sets (default: all of each task's)")
    add_run_flags(p, "results folder (default results/llm/<suite>)")
    add_source_flags(p, "local data instead of the Hub (LLM-Adapters' layout; benchmarks/llm/data.py)",
                     "transformers causal LM name (default: the suite's)",
                     "a local transformers folder (save_pretrained) with the model and tokenizer")
    add_pin_flags(p)
    add_option_flags(p, skip=OPTION_SKIP, recipe=("epochs", "batch_size", "lr", "weight_decay", "clip_grad",
                                                   "warmup_steps"))
    for name, kind in DATA_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, help="override the recipe's data / decoding value")
    add_sweep_flags(p, "sequences per forward pass and process (default: the recipe's)", match=False)
    p.add_argument("--micro-batch-size", dest="micro_batch", type=positive_int, help=argparse.SUPPRESS)  # older name
    p.add_argument("--eval-batch-size", type=positive_int, help="prompts per generation batch (default 16 on a GPU, "
                                                                "8 on CPU)")
    p.add_argument("--eval-limit", type=positive_int, help="answer only the first N examples of each test set "
                                                           "(quick checks)")
    p.add_argument("--max-steps", type=positive_int, help="stop training after N optimizer steps (speed measurements)")
    p.add_argument("--dtype", choices=("auto", *PRECISIONS), default="auto",
                   help="base weights and autocast (auto: the recipes' sources' on a GPU, fp32 on CPU; fp32+bf16: "
                        "fp32 weights under bf16 autocast); adapters stay fp32")
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction,
                   help="recompute activations in the backward (default: on with a GPU)")
    add_save_flag(p)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="smoke suite: where the generated assets are cached")
    p.add_argument("--pretrain-epochs", type=nonnegative_int, default=SMOKE_PRETRAIN_EPOCHS,
                   help="smoke suite: epochs of pre-training the tiny LLaMA on the generated prompts (0: random "
                        "weights)")
    add_process_flags(p, workers=False)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags, checked against the recipe tables without importing torch (a bad flag fails at once)."""
    p = parser()
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    try:
        args.tasks = _check(names(args.tasks) if args.tasks else list(suite.tasks), tuple(TASK_TESTS), "task(s)")
        if args.methods:   # named methods must have a recipe on every named task
            args.methods = _check(names(args.methods), METHODS, "method(s)")
            for task in args.tasks:
                check_recipes(task, args.methods)
        else:   # the suite's: each on the tasks whose sources publish its recipe
            args.methods = [m for m in suite.methods if any((t, m) in RECIPES for t in args.tasks)]
        every_test = [t for task in args.tasks for t in TASK_TESTS[task]]
        args.tests = _check(names(args.tests), every_test, "test set(s)") if args.tests else None
        args.save_adapters = chosen(args.save_adapters, suite.save_adapters)
        _check(args.save_adapters, METHODS, "method(s)") if args.save_adapters else None
        args.seeds = seed_list(args.seeds) if args.seeds else list(suite.seeds)
        if args.lrs and len(args.lrs) > 1:
            raise ValueError(ONE_LR)
        check_options(args, args.methods)
        check_paths(args)
        check_pins(args)
    except ValueError as err:
        p.error(str(err))
    args.out = args.out or str(Path("results") / "llm" / args.suite)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rescore:
        return rescore(Path(args.rescore))
    from ..core.runner import main_guarded
    from . import plan   # torch and transformers load only after the flags are valid

    return main_guarded(plan.run, args, plan.EXPECTED_ERRORS)


def rescore(path: Path) -> int:
    """--rescore: both readings of every saved generation (pure Python: no torch, no model)."""
    import sys

    from .rescore import RescoreError
    from .rescore import rescore as score

    try:
        score(path)
    except RescoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
