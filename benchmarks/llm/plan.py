"""One run of the reasoning suite: (method, task, seed) -> fine-tuned adapter, generated answers, result."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neat_text.reasoning import Task, eval_prompt, extract, is_correct

from . import llm_methods as LM
from .cli import provenance
from .llm_recipes import DESCRIPTIONS, PUBLISHED, LLMRecipe, TaskSetting
from .llm_train import checkpoint_activations, fine_tune, generate, is_fsdp, whole_parameters
from .methods import is_peft
from .models import ModelSource, create_causal_lm
from .results import adapter_dir, run_name, write_json_atomic
from .train import Dist

PREDICTIONS = "predictions"


@dataclass(frozen=True)
class JobOptions:
    """What the command line decides for every run."""

    out: Path
    source: ModelSource
    dtype: torch.dtype
    gradient_checkpointing: bool
    targets: tuple[str, ...] | None
    save_adapters: tuple[str, ...]
    eval_batch_size: int
    eval_limit: int | None = None
    max_steps: int | None = None
    progress: bool = True
    suite: str = "paper"
    data_dir: str | None = None


def load_base(options: JobOptions, device: torch.device) -> nn.Module:
    """The pretrained causal LM in the run's dtype on `device`, gradient checkpointing on when asked."""
    model = create_causal_lm(options.source, dtype=options.dtype).to(device)
    if options.gradient_checkpointing:
        checkpoint_activations(model)
    model.config.use_cache = False  # training; generation asks for the cache itself
    return model


def score(task: Task, test: str, rows: Any, generations: list[str]) -> tuple[dict[str, Any], list[dict]]:
    """Accuracy of the generations on one test set, and one prediction record per example."""
    kind = task.test(test).answer_kind
    records = [{"instruction": row["instruction"], "answer": row["answer"], "generation": text,
                "prediction": extract(kind, text), "correct": is_correct(kind, text, row["answer"])}
               for row, text in zip(rows, generations)]
    correct = sum(r["correct"] for r in records)
    return {"accuracy": correct / len(records), "correct": correct, "total": len(records)}, records


def evaluate(model: nn.Module, task: Task, setting: TaskSetting, tests: dict[str, Any], tokenizer: Any,
             accelerator: Any, options: JobOptions) -> tuple[dict[str, dict], dict[str, list[dict]], dict[str, float]]:
    """Generate an answer to every test example and score it, per test set."""
    scores, predictions, rates = {}, {}, {"generation_seconds": 0.0, "generated_tokens_per_s": []}
    for name, rows in tests.items():
        prompts = [eval_prompt(task.template, row) for row in rows]
        texts, stats = generate(model, tokenizer, prompts, accelerator, setting.max_new_tokens[name],
                                setting.num_beams, setting.stop_strings, options.eval_batch_size, options.progress,
                                desc=f"generating {name}")
        scores[name], predictions[name] = score(task, name, rows, texts)
        rates["generation_seconds"] += stats["generation_seconds"]
        rates["generated_tokens_per_s"].append(stats["generated_tokens_per_s"])
    rates["generated_tokens_per_s"] = sum(rates["generated_tokens_per_s"]) / len(tests)
    return scores, predictions, rates


def run_job(method: str, task: Task, seed: int, recipe: LLMRecipe, setting: TaskSetting, data: dict[str, Any],
            tokenizer: Any, accelerator: Any, options: JobOptions) -> dict[str, Any]:
    """Fine-tune `method` on the task's tokenised training data, answer its test sets, save the adapter when
    asked; returns the result (rank 0 writes it)."""
    from accelerate.utils import set_seed

    start = time.perf_counter()
    set_seed(seed)
    model = load_base(options, accelerator.device)
    targets = LM.resolve_targets(model, options.targets or setting.targets)
    model = LM.build(method, model, recipe, targets)
    counts = LM.parameter_counts(model)
    folder = adapter_dir(options.out, method, task.name, seed)
    saving = method in options.save_adapters
    initial = LM.save_initial(method, model, folder) if saving and accelerator.is_main_process else None
    model, stats = fine_tune(model, data["train"], recipe, tokenizer, accelerator, seed, options.progress,
                             options.max_steps)
    scores, predictions, rates = evaluate(model, task, setting, data["tests"], tokenizer, accelerator, options)
    saved: dict[str, Any] = {}
    if saving:
        with whole_parameters(accelerator.unwrap_model(model)) as whole:
            if accelerator.is_main_process:
                state = ({n: p.detach() for n, p in whole.named_parameters()}
                         if is_fsdp(accelerator) and is_peft(whole) else None)
                saved = LM.save_trained(method, whole, folder, initial, state)
        accelerator.wait_for_everyone()
    predictions_path = Path(options.out) / PREDICTIONS / f"{run_name(method, task.name, seed)}.json"
    if accelerator.is_main_process:
        write_json_atomic(predictions_path, predictions)
    published = PUBLISHED.get((task.name, options.source.name), {}).get(method)
    dist = Dist(accelerator.process_index, accelerator.num_processes)
    return {
        "suite": "llm", "method": method, "dataset": task.name, "seed": seed,
        "accuracy": sum(s["accuracy"] for s in scores.values()) / len(scores), "tests": scores,
        **counts, **stats, **rates, "wall_seconds": time.perf_counter() - start,
        "adapter": saved, "predictions_path": str(predictions_path),
        "published": asdict(published) if published else None,
        "config": {
            "suite": options.suite, "recipe": asdict(recipe), "task_setting": asdict(setting), "targets": targets,
            "method": DESCRIPTIONS[method], **options.source.describe(), "dtype": str(options.dtype).replace("torch.", ""),
            "gradient_checkpointing": options.gradient_checkpointing, "max_steps": options.max_steps,
            "eval_limit": options.eval_limit, "template": task.template.source,
            "distributed": {"type": accelerator.distributed_type.name, "processes": accelerator.num_processes,
                            "mixed_precision": accelerator.mixed_precision},
            "data": {"data_dir": options.data_dir, "train": task.train.hub, "train_size": len(data["train"]),
                     "tests": {t.name: t.source.hub for t in task.tests if t.name in data["tests"]},
                     "test_sizes": {name: len(rows) for name, rows in data["tests"].items()}},
        },
        **provenance(accelerator.device, dist),
    }
