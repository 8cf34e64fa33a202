"""Setting a reasoning run up before any training: where model and data come from, the tokenizer, and the
checks that fail early with one message (no network, a model type without a preset, batches that do not
divide), so that nothing is written to the results folder by a run that cannot go through."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from neat_text.reasoning import Task, load_task, unavailable_without_network
from neat_core.remote import hub_reachable, offline_mode

from .llm_job import JobOptions
from .llm_methods import resolve_targets
from .llm_recipes import SUITES, LLMRecipe, TaskSetting
from .llm_smoke import assets
from .llm_train import accumulation, tokenized
from .models import ModelSource, text_tokenizer


def sources(args: argparse.Namespace) -> tuple[ModelSource, str | None]:
    """The model and the data folder: the flags, else the suite's (smoke: the generated assets, made once)."""
    name = args.model or SUITES[args.suite].model
    model_path, data_dir = args.model_path, args.data_dir
    if args.suite == "smoke" and not (args.model and args.data_dir):
        smoke_data, smoke_model = assets(args.cache_dir, args.pretrain_epochs)
        data_dir = data_dir or str(smoke_data)
        model_path = model_path or (None if args.model else str(smoke_model))
    return ModelSource(name, model_path), data_dir


def check_network(data_dir: str | None, task: str) -> None:
    """Without --data-dir the network must be reachable (or offline mode on, for cached copies)."""
    if data_dir is None and not offline_mode() and not hub_reachable():
        raise unavailable_without_network(task)


def tokenizer(source: ModelSource) -> Any:
    """The model's tokenizer, padding on the right for training (generation pads left itself); a model without
    a pad token pads with its unk token as LLM-Adapters does for LLaMA, else with EOS."""
    tok = text_tokenizer(source)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    tok.padding_side = "right"
    return tok


def check_model(source: ModelSource, targets: tuple[str, ...] | None) -> list[str]:
    """The targets every method will adapt, resolved on a weightless copy of the model (SetupError when the
    model type has no preset or lacks the named layers)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from .models import ModelUnavailableError

    try:
        config = AutoConfig.from_pretrained(source.path or source.name)
    except OSError as err:
        raise ModelUnavailableError(f"The config of {source.name!r} cannot be read ({type(err).__name__}); pass "
                                    "--model-path with a local transformers folder.") from None
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return resolve_targets(skeleton, targets)


def check_batches(recipes: Iterable[LLMRecipe], processes: int) -> None:
    for recipe in recipes:
        accumulation(recipe, processes)


def task_data(task: Task, data_dir: str | None, args: argparse.Namespace, tokenizer: Any,
              setting: TaskSetting) -> dict[str, Any]:
    """The task's tokenised training split and its test sets (the first --eval-limit examples of each)."""
    tests = [t for t in (args.tests or []) if t in {s.name for s in task.tests}] or None
    loaded = load_task(task, data_dir, tests)
    if args.eval_limit:
        loaded["tests"] = {n: d.select(range(min(args.eval_limit, len(d)))) for n, d in loaded["tests"].items()}
    return {"train": tokenized(loaded["train"], task.template, tokenizer, setting.cutoff_len),
            "tests": loaded["tests"]}


def job_options(args: argparse.Namespace, source: ModelSource, data_dir: str | None, dtype: torch.dtype,
                cuda: bool) -> JobOptions:
    return JobOptions(
        out=Path(args.out), source=source, dtype=dtype,
        gradient_checkpointing=cuda if args.gradient_checkpointing is None else args.gradient_checkpointing,
        targets=args.targets, save_adapters=tuple(args.save_adapters),
        eval_batch_size=args.eval_batch_size or (16 if cuda else 8), eval_limit=args.eval_limit,
        max_steps=args.max_steps, progress=not args.no_progress, suite=args.suite, data_dir=data_dir)
