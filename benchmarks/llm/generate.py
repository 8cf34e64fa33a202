"""The reasoning suite's loops on Accelerate: supervised fine-tuning of a causal LM and batched generation.

One process, or several through `accelerate launch` (DDP or FSDP, configs/accelerate/*.yaml). Training: AdamW
(no weight decay by default), linear warm-up over `warmup_steps` then linear decay to zero (transformers'
schedule, as the lineage's Trainer), gradient clipping at `max_grad_norm`, gradient accumulation to the
recipe's effective batch, bf16 autocast on GPUs, a progress bar with the loss and tokens/s. Generation: greedy
or beam search in left-padded batches with the KV cache, each process taking an equal share of the prompts
(FSDP: with `synced_gpus`, since every forward is collective).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .llm_recipes import LLMRecipe, SetupError
from .train import PROGRESS_EVERY


def tokenized(data: Any, template: Any, tokenizer: Any, cutoff_len: int) -> Any:
    """The training split as input_ids / attention_mask / labels (prompt tokens labelled -100)."""
    from neat_text.reasoning import supervised_example

    return data.map(lambda row: supervised_example(template, row, tokenizer, cutoff_len),
                    remove_columns=data.column_names, desc="tokenizing")


def checkpoint_activations(model: nn.Module) -> nn.Module:
    """transformers' activation (gradient) checkpointing, non-reentrant (frozen embeddings need no grad trick)."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x's name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def accumulation(recipe: LLMRecipe, world: int) -> int:
    """Micro-batches per optimizer step and process, so that micro x steps x processes = the effective batch."""
    per_step = recipe.micro_batch_size * world
    if recipe.batch_size % per_step:
        raise SetupError(f"The effective batch {recipe.batch_size} is not a multiple of micro batch "
                         f"{recipe.micro_batch_size} x {world} process(es); change --batch-size or --micro-batch-size.")
    return recipe.batch_size // per_step


def is_fsdp(accelerator: Any) -> bool:
    return accelerator.distributed_type.name == "FSDP"


def fine_tune(model: nn.Module, data: Any, recipe: LLMRecipe, tokenizer: Any, accelerator: Any, seed: int,
              progress: bool = True, max_steps: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train `model` on tokenised `data` with `recipe`; returns the prepared (wrapped) model and statistics:
    the loss of every optimizer step (mean over its micro-batches and processes), tokens/s, seconds, steps
    and, on CUDA, the peak memory."""
    from transformers import DataCollatorForSeq2Seq, get_linear_schedule_with_warmup

    accum = accumulation(recipe, accelerator.num_processes)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, pad_to_multiple_of=8, label_pad_token_id=-100,
                                     return_tensors="pt")
    loader = DataLoader(data, batch_size=recipe.micro_batch_size, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(seed))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps = recipe.epochs * math.ceil(len(loader) / accum)
    steps = min(steps, max_steps) if max_steps else steps
    schedule = get_linear_schedule_with_warmup(optimizer, min(recipe.warmup_steps, steps), steps)
    device = accelerator.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_losses, tokens, done, seconds = [], torch.zeros((), device=device), 0, 0.0
    model.train()
    for epoch in range(recipe.epochs):
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{recipe.epochs}", leave=False,
                   disable=not (progress and accelerator.is_main_process))
        start, running = time.perf_counter(), torch.zeros((), device=device)
        for i, batch in enumerate(bar):
            last = (i + 1) % accum == 0 or i + 1 == len(loader)
            with contextlib.nullcontext() if last else accelerator.no_sync(model):
                with accelerator.autocast():
                    loss = model(**batch).loss
                accelerator.backward(loss / accum)
            running, tokens = running + loss.detach().float() / accum, tokens + batch["attention_mask"].sum()
            if last:
                if recipe.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step_losses.append(running)
                running, done = torch.zeros((), device=device), done + 1
            if (i + 1) % PROGRESS_EVERY == 0 and step_losses:  # .item() waits for the device: not every step
                rate = tokens.item() * accelerator.num_processes / (seconds + time.perf_counter() - start)
                bar.set_postfix({"loss": f"{step_losses[-1].item():.3f}", "tokens/s": f"{rate:.0f}"})
            if done >= steps:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += time.perf_counter() - start
        if done >= steps:
            break
    losses = accelerator.reduce(torch.stack(step_losses), reduction="mean").tolist() if step_losses else []
    total_tokens = int(accelerator.reduce(tokens, reduction="sum").item())
    stats = {"train_loss": losses[-1] if losses else float("nan"), "step_losses": losses, "optimizer_steps": done,
             "train_tokens": total_tokens, "train_tokens_per_s": total_tokens / max(seconds, 1e-9),
             "train_seconds": seconds, "gradient_accumulation": accum}
    if device.type == "cuda":
        stats["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return model, stats


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def cut_at_stop(text: str, stop_strings: tuple[str, ...]) -> str:
    """The text before the first stop string (as vLLM returns it), stripped."""
    cut = min([text.find(s) for s in stop_strings if s in text] or [len(text)])
    return text[:cut].strip()


@torch.no_grad()
def generate(model: nn.Module, tokenizer: Any, prompts: list[str], accelerator: Any, max_new_tokens: int,
             num_beams: int = 1, stop_strings: tuple[str, ...] = (), batch_size: int = 16, progress: bool = True,
             desc: str = "generating") -> tuple[list[str], dict[str, float]]:
    """The continuation of every prompt (greedy, or beam search with `num_beams`; no sampling), each process
    generating an equal share in left-padded batches (longest first) with the KV cache; every process returns
    all of them in order, and generated tokens/s."""
    from accelerate.utils import gather_object
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, use_cache=True,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                              stop_strings=list(stop_strings) or None)
    generator = accelerator.unwrap_model(model)
    generator.eval()
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    done, new_tokens, start = [], 0, time.perf_counter()
    with accelerator.split_between_processes(order, apply_padding=True) as mine:
        bar = tqdm(list(_chunks(mine, batch_size)), desc=desc, leave=False,
                   disable=not (progress and accelerator.is_main_process))
        for chunk in bar:
            batch = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True, padding_side="left")
            batch = batch.to(accelerator.device)
            with accelerator.autocast():
                out = generator.generate(**batch, generation_config=config, synced_gpus=is_fsdp(accelerator),
                                         tokenizer=tokenizer if stop_strings else None)
            new = out[:, batch["input_ids"].shape[1]:]
            new_tokens += int((new != tokenizer.pad_token_id).sum())
            done += zip(chunk, tokenizer.batch_decode(new, skip_special_tokens=True))
    seconds = time.perf_counter() - start
    texts = dict(gather_object(done))  # padding repeats prompts at the end: every copy has the same text
    rate = accelerator.reduce(torch.tensor(float(new_tokens), device=accelerator.device), reduction="sum").item()
    return [cut_at_stop(texts[i], stop_strings) for i in range(len(prompts))], {
        "generated_tokens_per_s": rate / max(seconds, 1e-9), "generation_seconds": seconds}


@contextlib.contextmanager
def whole_parameters(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block every parameter is whole on every process (FSDP2 modules unsharded; a no-op
    otherwise), so adapters can be read and saved as plain tensors. Every process must enter it."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2: nothing can be sharded that way
        yield model
        return
    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for module in sharded:
        module.unshard()
    try:
        yield model
    finally:
        for module in sharded:
            module.reshard()
