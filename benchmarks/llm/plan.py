"""The reasoning suite's plan and runs (benchmarks.llm parses the flags, then calls `run`): where model and data
come from, the early checks (network, targets, batches) that fail with one message before anything is written,
and one job: (method, task, seed, lr) -> fine-tuned adapter (core.loop), generated answers, scores, result."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neat_text
from neat_core.remote import hub_reachable, offline_mode

from ..core import methods as M
from ..core.catalog import descriptions
from ..core.errors import SetupError
from ..core.flags import check_device_loaded, method_options, with_recipe_flags
from ..core.loop import (BestCheckpoint, accelerator_for, accumulation, is_fsdp, make_loader, train, uses_cuda,
                         whole_parameters)
from ..core.models import (ModelSource, ModelUnavailableError, create_causal_lm, model_pin, resolved, text_config,
                           text_tokenizer)
from ..core.recipe import COMMAND_LINE, Recipe
from ..core.results import adapter_dir, record, write_json_atomic
from ..core.runner import Job, provenance, run_suite, world_size
from ..core.sources import WEIGHTS, Sources, shown_revision, source_table
from ..core.sweep import expand
from .data import ReasoningDataError, load_task, unavailable_without_network
from .generate import checkpoint_activations, collator, generate, lm_loss, peft_collator, peft_lm_loss
from .prompts import eval_prompt
from .recipes import ORIENTATIONS, PRECISIONS, RECIPES, SUITES, recipe_for, smoke_recipe
from .rescore import KINDS, LENIENT_KINDS, accuracy, scored
from .shape import SHAPE
from .smoke import assets
from .tasks import Task, get_task
from .training_data import key as data_key
from .training_data import prepared

EXPECTED_ERRORS = (ReasoningDataError, ModelUnavailableError, SetupError)
PREDICTIONS = "predictions"
DESCRIPTIONS = descriptions("causal")
SELECTION = "the recipe's lr (each source publishes one); no selection"


# --- the plan ----------------------------------------------------------------------------------------------
def recipe(args: argparse.Namespace, task: str, method: str, model: str) -> Recipe:
    """The table's recipe (smoke: shrunk), then the command line's loop, data and decoding values."""
    base = recipe_for(task, method, model)
    base = with_recipe_flags(args, smoke_recipe(base) if args.suite == "smoke" else base)
    given = {k: getattr(args, k) for k in ("cutoff_len", "num_beams") if getattr(args, k) is not None}
    if args.max_new_tokens is not None:
        given["max_new_tokens"] = {t: args.max_new_tokens for t in base.data["max_new_tokens"]}
    if args.targets:
        given["targets"] = tuple(args.targets)
    return base.with_data(COMMAND_LINE, **given) if given else base


def model_name(args: argparse.Namespace) -> str:
    return args.model or SUITES[args.suite].model


def plan(args: argparse.Namespace, world: int = 1) -> list[Job]:
    """Every run, in order (tasks, then methods, seeds, lrs; a method only on the tasks it has a recipe for): the
    recipe at its lr, the method options (the recipe's,
    then the command line's), the micro-batch and accumulation that make the recipe's batch."""
    recipes = {(m, t): recipe(args, t, m, model_name(args)) for m in args.methods for t in args.tasks
               if (t, m) in RECIPES}
    jobs = []
    for run in expand(args.methods, args.tasks, args.seeds, lambda m, t: recipes[m, t].grid if (m, t) in recipes
                      else ()):
        table = recipes[run.method, run.dataset]
        micro, accum = accumulation(table.batch_size, table.micro_batch or table.batch_size, world)
        jobs.append(Job(run, run.method, table.at(run.lr), method_options(args, table.options), micro, accum))
    return jobs


def dry_run(args: argparse.Namespace, jobs: list[Job], world: int) -> str:
    """The plan as Markdown: per (method, task) the lr, batch, micro x accumulation x processes, epochs, method
    options, cutoff and decoding; then where the data and the model come from (revisions, splits, expected rows)."""
    from .data import source_rows

    lines = [f"Plan: {len(jobs)} runs ({len(args.seeds)} seed(s)), model {model_name(args)}"
             + (f" from {args.model_path}" if args.model_path else "") + ".", "",
             "| method | task | lr | batch | micro x accum x procs | epochs | schedule | options | targets | data | "
             "decoding |",
             "|---|---|---|---:|---|---:|---|---|---|---|---|"]
    seen: set = set()
    for j in jobs:
        if (j.run.method, j.run.dataset) in seen:
            continue
        seen.add((j.run.method, j.run.dataset))
        data = j.recipe.data
        options = ", ".join(f"{k}={v}" for k, v in j.recipe.options.items())
        decoding = (f"{'greedy' if data['num_beams'] == 1 else str(data['num_beams']) + ' beams'}, max new tokens "
                    + ", ".join(f"{t} {n}" for t, n in data["max_new_tokens"].items()))
        if data.get("max_length"):
            decoding += f" (prompt + new at most {data['max_length']})"
        if j.run.method in ORIENTATIONS:
            options += f", orientation {ORIENTATIONS[j.run.method].split(' ')[0]}"
        warm = f"{j.recipe.warmup_steps} steps" if j.recipe.warmup_steps is not None else f"{j.recipe.warmup:g}"
        lines.append(f"| {j.run.method} | {j.run.dataset} | {','.join(f'{lr:g}' for lr in j.grid)} | "
                     f"{j.recipe.batch_size} | {j.micro_batch} x {j.grad_accum} x {world} | {j.recipe.epochs} | "
                     f"warm-up {warm}, {j.recipe.schedule}, wd {j.recipe.weight_decay:g} | {options} | "
                     f"{','.join(data.get('targets') or ('paper_llm preset',))} | {training_line(data)} | {decoding} |")
    try:
        precision = f"{run_precision(args, jobs, uses_cuda(args.device))} (base weights, autocast)"
    except SetupError as err:
        precision = f"refused: {err}"
    lines += ["", f"Precision on this machine: {precision}; the recipes' sources: "
              + ", ".join(sorted({f"{j.run.dataset} {j.recipe.data.get('dtype', 'fp32+bf16')}" for j in jobs})) + "."]
    smoke = args.suite == "smoke"
    generated = smoke and not args.data_dir
    rows = source_rows(args.tasks, args.data_dir or ("the smoke suite's generated files" if generated else None),
                       generated, args.out, args.revisions)
    model = (f"--model-path {args.model_path} (a local copy)" if args.model_path else
             "a tiny random LLaMA made here (the smoke suite's)" if smoke and not args.model else
             shown_revision(model_pin(model_name(args)), args.out, args.revisions))
    return "\n".join(lines + source_table(rows + [("model", model, WEIGHTS, None)], args.out))


def training_line(data: dict[str, Any]) -> str:
    """The data settings of a recipe in a few words, for the dry run."""
    parts = [f"cutoff {data['cutoff_len']}", "prompt trained" if data.get("train_on_inputs") else "prompt masked"]
    if data.get("char_limit"):
        parts.append(f"rows <= {data['char_limit']} chars")
    if data.get("train_rows"):
        parts.append(f"first {data['train_rows']:,} rows")
    if data.get("order"):
        parts.append(f"{data['order']} of {data['bucket_rows']} (unshuffled)")
    if data.get("val_set_size"):
        parts.append(f"{data['val_set_size']} held out, best of every {data['eval_steps']} steps")
    if data.get("labels"):
        parts.append(f"{data['labels']} labels")
    return ", ".join(parts)


def run_precision(args: argparse.Namespace, jobs: list[Job], cuda: bool) -> str:
    """The run's precision (recipes.PRECISIONS): --dtype when given; fp32 on a CPU; else the one its recipes' sources
    trained in (Accelerate fixes autocast per process, so jobs that differ are refused with what to do)."""
    if args.dtype != "auto":
        return args.dtype
    if not cuda:
        return "fp32"
    wanted = sorted({j.recipe.data.get("dtype", "fp32+bf16") for j in jobs})
    if len(wanted) > 1:
        by = ", ".join(f"{t} {d}" for t, d in sorted({(j.run.dataset, j.recipe.data.get('dtype', 'fp32+bf16'))
                                                      for j in jobs}))
        raise SetupError(f"These runs' sources train in different precisions ({by}), and one process has one: run "
                         "the tasks separately, or pass --dtype.")
    return wanted[0]


def check_launcher(precision: str, cuda: bool) -> None:
    """On a GPU, `accelerate launch` fixes autocast for the process (ACCELERATE_MIXED_PRECISION, from its config or
    --mixed_precision) over the one the run's precision needs: a launch that disagrees is refused, not run in a
    precision its results would not name."""
    launcher, wanted = os.environ.get("ACCELERATE_MIXED_PRECISION"), PRECISIONS[precision][1]
    if cuda and launcher and launcher != wanted:
        raise SetupError(f"accelerate launch sets mixed precision {launcher!r}, but this run trains in {precision} "
                         f"({PRECISIONS[precision][0]} weights, autocast {wanted!r}; the recipes' sources' precision "
                         f"or --dtype): add --mixed_precision {wanted} to the accelerate launch line, or pass --dtype "
                         "for another precision.")


# --- what the jobs share -----------------------------------------------------------------------------------
@dataclass
class Setup:
    """What every job of a run shares: model source, data folder, base weights' dtype, checkpointing, the targets
    every method adapts, the tokenizer, the raw task data, the resolved sources, and tokenised training sets by
    (task, cutoff, masking)."""

    source: ModelSource
    data_dir: str | None
    precision: str
    gradient_checkpointing: bool
    targets: dict[tuple[str, ...] | None, list[str]]
    tokenizer: Any
    tasks: dict[str, dict[str, Any]]
    eval_batch_size: int | None
    sources: Sources
    tokenized: dict[tuple, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, PRECISIONS[self.precision][0])

    def train_set(self, task: Task, data: dict[str, Any]) -> Any:
        key = (task.name, *data_key(data))
        if key not in self.tokenized:
            self.tokenized[key] = prepared(self.tasks[task.name]["train"], task.template, self.tokenizer, data)
        return self.tokenized[key]


def sources(args: argparse.Namespace) -> tuple[ModelSource, str | None, bool]:
    """The model, the data folder and whether its data is generated: the flags, else the suite's (smoke: the
    generated assets, made once)."""
    name = model_name(args)
    model_path, data_dir = args.model_path, args.data_dir
    if args.suite == "smoke" and not (args.model and args.data_dir):
        smoke_data, smoke_model = assets(args.cache_dir, args.pretrain_epochs)
        data_dir = data_dir or str(smoke_data)
        model_path = model_path or (None if args.model else str(smoke_model))
    return ModelSource(name, model_path), data_dir, data_dir is not None and not args.data_dir


def tokenizer_for(source: ModelSource) -> Any:
    """The model's tokenizer, padding on the right for training (generation pads left itself); a model without a
    pad token pads with its unk token as LLM-Adapters does for LLaMA, else with EOS."""
    tok = text_tokenizer(source)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token if tok.unk_token is not None else tok.eos_token
    tok.padding_side = "right"
    return tok


def resolve_targets(model: nn.Module, targets: tuple[str, ...] | None) -> list[str]:
    """The layers every method adapts: `targets` when given (each must name linear layers of the model), else the
    model type's `paper_llm` preset; a SetupError otherwise (for a model type without a preset it suggests --targets
    with the model's linear layer names)."""
    linear = {name.rpartition(".")[2] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    if not targets:
        try:
            return neat_text.preset_fields(model, "paper_llm")["targets"]
        except ValueError as err:
            raise SetupError(f"{err} On the command line: --targets with some of {', '.join(sorted(linear))}.") from None
    missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name, m in model.named_modules()
                                             if isinstance(m, nn.Linear))]
    if missing:
        raise SetupError(f"Targets {', '.join(missing)} (the recipe's, or --targets) match no linear layer of "
                         f"{type(model).__name__}; its linear layers are named {', '.join(sorted(linear))}. On the "
                         "command line: --targets with some of them.")
    return list(targets)


def check_model(source: ModelSource, wanted: list[tuple[str, ...] | None]) -> dict[tuple[str, ...] | None, list[str]]:
    """{a recipe's targets: the layers they adapt}, resolved on a weightless copy of the model (SetupError when the
    model type has no preset or lacks the named layers)."""
    from transformers import AutoModelForCausalLM

    config = text_config(source)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return {targets: resolve_targets(skeleton, targets) for targets in dict.fromkeys(wanted)}


def setup(args: argparse.Namespace, todo: list[Job], accelerator, precision: str, found: Sources) -> Setup:
    """For a run in `precision`: model and data sources (at the commits `found` resolves), the raw data of every task
    with unfinished jobs (checked against its rows), the model's commit, the tokenizer and the targets; fails early
    (no network, a data set that is not what its source says, a gated model, a model type without a preset, targets
    the model lacks) with one message."""
    with accelerator.main_process_first():  # the smoke assets are made once
        source, data_dir, generated = sources(args)
    tasks = list(dict.fromkeys(j.run.dataset for j in todo))
    if data_dir is None and not offline_mode() and not hub_reachable():
        raise unavailable_without_network(tasks[0])
    data = {}
    for name in tasks:
        task = get_task(name)
        tests = [t for t in (args.tests or []) if t in {s.name for s in task.tests}] or None
        loaded = load_task(task, data_dir, tests, sources=found, accept_subset=args.accept_subset,
                           generated=generated)
        if args.eval_limit:
            loaded["tests"] = {n: d.select(range(min(args.eval_limit, len(d)))) for n, d in loaded["tests"].items()}
        data[name] = loaded
    source = resolved(source, found)
    tokenizer = tokenizer_for(source)
    targets = check_model(source, [j.recipe.data.get("targets") for j in todo])
    cuda = accelerator.device.type == "cuda"
    return Setup(source, data_dir, precision,
                 cuda if args.gradient_checkpointing is None else args.gradient_checkpointing, targets, tokenizer, data,
                 args.eval_batch_size, found)


# --- one job ------------------------------------------------------------------------------------------------
def load_base(setup_: Setup, device: torch.device) -> nn.Module:
    """The pretrained causal LM in the run's dtype on `device`, gradient checkpointing on when asked."""
    model = create_causal_lm(setup_.source, dtype=setup_.dtype).to(device)
    if setup_.gradient_checkpointing:
        checkpoint_activations(model)
    model.config.use_cache = False  # training; generation asks for the cache itself
    return model


def score(test: str, rows: Any, generations: list[str]) -> tuple[dict[str, Any], list[dict]]:
    """Accuracy of the generations on one test set (the lineage's reading; the lenient one beside it, labelled), and
    one prediction record per example."""
    records = [{"instruction": row["instruction"], "answer": row["answer"], "generation": text,
                **scored(test, text, row["answer"])} for row, text in zip(rows, generations)]
    # commonsense has no lenient fallback: the same number twice says nothing
    return accuracy(records, lenient=KINDS[test] in LENIENT_KINDS), records


def evaluate(model: nn.Module, task: Task, table: Recipe, setup_: Setup, accelerator, progress: bool
             ) -> tuple[dict[str, dict], dict[str, list[dict]], dict[str, float]]:
    """Generate an answer to every test example and score it, per test set."""
    scores, predictions, rates = {}, {}, {"generation_seconds": 0.0, "generated_tokens_per_s": []}
    tests = setup_.tasks[task.name]["tests"]
    cuda = accelerator.device.type == "cuda"
    batch = setup_.eval_batch_size or table.data.get("eval_batch_size") or (16 if cuda else 8)
    for name, rows in tests.items():
        prompts = [eval_prompt(task.template, row) for row in rows]
        texts, stats = generate(model, setup_.tokenizer, prompts, accelerator, table.data["max_new_tokens"][name],
                                table.data["num_beams"], tuple(table.data["stop_strings"]), batch,
                                progress, desc=f"generating {name}", max_length=table.data.get("max_length"))
        if table.data.get("score_with_prompt"):   # the source reads the decoded output, prompt included
            texts = [prompt + text for prompt, text in zip(prompts, texts)]
        scores[name], predictions[name] = score(name, rows, texts)
        rates["generation_seconds"] += stats["generation_seconds"]
        rates["generated_tokens_per_s"].append(stats["generated_tokens_per_s"])
    rates["generated_tokens_per_s"] = sum(rates["generated_tokens_per_s"]) / len(tests)
    return scores, predictions, rates


VAL_SEED = 42   # LLM-Adapters' finetune.py: train_test_split(test_size=val_set_size, shuffle=True, seed=42)


def held_out(data: Any, table: Recipe, tokenizer: Any, micro: int, seed: int, accelerator
             ) -> tuple[Any, BestCheckpoint | None]:
    """(the training examples, the best-checkpoint keeper): with the recipe's `val_set_size` (the lineage's
    validation hold-out), that many examples are held out (seeded as the lineage does) and the loss on them is
    evaluated every `eval_steps` optimizer steps; the run ends on the best weights (Trainer's
    load_best_model_at_end). Without it, all of `data` trains and the last weights are kept."""
    size = table.data.get("val_set_size") or 0
    if not size:
        return data, None
    parts = data.train_test_split(test_size=size, shuffle=True, seed=VAL_SEED)
    loader = make_loader(parts["test"], micro, False, 0, seed, accelerator, collator(tokenizer))

    @torch.no_grad()
    def loss(model: nn.Module) -> float:
        total, count = torch.zeros((), device=accelerator.device), 0
        for batch in loader:
            with accelerator.autocast():
                total += model(**batch).loss.float()
            count += 1
        return float(accelerator.reduce(total / max(count, 1), reduction="mean").item())

    return parts["train"], BestCheckpoint(table.data["eval_steps"], loss)


def save(args: argparse.Namespace, job: Job, model: nn.Module, initial: Path | None, accelerator) -> dict[str, Any]:
    """The trained adapter under OUT/adapters/<run>/ (every process gathers FSDP shards; the main one writes)."""
    saved: dict[str, Any] = {}
    with whole_parameters(accelerator.unwrap_model(model)) as whole:
        if accelerator.is_main_process:
            state = ({n: p.detach() for n, p in whole.named_parameters()}
                     if is_fsdp(accelerator) and M.is_peft(whole) else None)
            saved = M.save_trained(job.method, whole, adapter_dir(args.out, job.run), initial, state)
    accelerator.wait_for_everyone()
    return saved


def run_job(args: argparse.Namespace, job: Job, setup_: Setup, accelerator) -> dict[str, Any]:
    """Fine-tune the job's method on its task's tokenised training data, answer its test sets, save the adapter when
    asked; returns the result (the main process writes it)."""
    from accelerate.utils import set_seed

    run, table, task = job.run, job.recipe, get_task(job.run.dataset)
    start = time.perf_counter()
    set_seed(run.seed)
    options = replace(job.options, targets=tuple(setup_.targets[table.data.get("targets")]))
    model = M.build(job.method, load_base(setup_, accelerator.device), options, "causal")
    counts = M.parameter_counts(model, [])
    saving = job.method in args.save_adapters
    initial = (M.save_initial(job.method, model, adapter_dir(args.out, run))
               if saving and accelerator.is_main_process else None)
    train_on_inputs = bool(table.data.get("train_on_inputs", False))
    data = setup_.train_set(task, dict(table.data))
    data, keep_best = held_out(data, table, setup_.tokenizer, job.micro_batch, run.seed, accelerator)
    peft_labels = table.data.get("labels") == "peft"
    loader = make_loader(data, job.micro_batch, True, 0, run.seed, accelerator,
                         (peft_collator if peft_labels else collator)(setup_.tokenizer),
                         drop_last=False,   # the lineage's Trainer keeps the last partial batch
                         shuffle=table.data.get("order") is None)
    model, stats = train(model, loader, table, accelerator, peft_lm_loss if peft_labels else lm_loss,
                         grad_accum=job.grad_accum, max_steps=args.max_steps, keep_best=keep_best,
                         progress=not args.no_progress, unit="tokens")
    scores, predictions, rates = evaluate(model, task, table, setup_, accelerator, not args.no_progress)
    if accelerator.device.type == "cuda":   # PEFT's peak: the whole run, its test-set generation included
        rates["peak_reserved_with_generation_mib"] = torch.cuda.max_memory_reserved(accelerator.device) / 2 ** 20
    saved = save(args, job, model, initial, accelerator) if saving else {}
    predictions_path = Path(args.out) / PREDICTIONS / f"{run.name}.json"
    if accelerator.is_main_process:
        write_json_atomic(predictions_path, predictions)
    mean = sum(s["accuracy"] for s in scores.values()) / len(scores)
    config = {"suite": args.suite, "recipe": table.describe(), "method_options": asdict(options),
              "targets": list(options.targets), "method": DESCRIPTIONS[job.method], **setup_.source.describe(),
              "orientation": ORIENTATIONS.get(job.method), "dtype": str(setup_.dtype).removeprefix("torch."),
              "precision": setup_.precision, "source_precision": table.data.get("dtype"),
              "gradient_checkpointing": setup_.gradient_checkpointing, "max_steps": args.max_steps,
              "eval_limit": args.eval_limit, "template": task.template.source, "micro_batch": job.micro_batch,
              "grad_accum": job.grad_accum,
              "data": {"data_dir": setup_.data_dir, "train": task.train.hub, "train_size": len(data),
                       "train_on_inputs": train_on_inputs,
                       "tests": {t.name: t.source.hub for t in task.tests if t.name in scores},
                       "test_sizes": {name: s["total"] for name, s in scores.items()}}}
    return record("llm", run, metric="accuracy", score=mean, selection_score=None, selection=SELECTION,
                  scores={name: s["accuracy"] for name, s in scores.items()}, counts=counts, stats={**stats, **rates},
                  config=config, sources=setup_.sources.describe(), grid=job.grid, tests=scores,
                  predictions_path=str(predictions_path), adapter=saved,
                  wall_seconds=time.perf_counter() - start, **provenance(accelerator))


def summary(r: dict[str, Any]) -> str:
    tests = ", ".join(f"{t} {s:.3f}" for t, s in r["scores"].items())
    return f"accuracy {r['score']:.4f} ({tests}), {r['train_tokens_per_s']:.0f} train tokens/s"


def report(out):
    from ..core.report import write_report

    return write_report(out, SHAPE)


def run(args: argparse.Namespace) -> int:
    threads = args.threads or SUITES[args.suite].threads
    if threads:
        torch.set_num_threads(threads)
    if args.dry_run:
        print(dry_run(args, plan(args, world_size()), world_size()))
        return 0
    check_device_loaded(args.device)
    jobs = plan(args, world_size())
    cuda = uses_cuda(args.device)
    precision = run_precision(args, jobs, cuda)
    check_launcher(precision, cuda)
    accelerator = accelerator_for(args.device, mixed=PRECISIONS[precision][1])
    return run_suite(args, jobs, accelerator,
                     prepare=lambda todo, found: setup(args, todo, accelerator, precision, found),
                     run_job=lambda job, shared: run_job(args, job, shared, accelerator), summary=summary,
                     report=report)
