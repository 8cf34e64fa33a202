"""The reasoning suite's own pieces around the one training loop (core.loop): tokenised supervised examples, the
loop's hook for causal-LM batches, activation checkpointing, and batched generation.

Generation: greedy or beam search in left-padded batches with the KV cache, each process taking an equal share of
the prompts (FSDP: with `synced_gpus`, since every forward is collective); the text before the first stop string
is the answer, as vLLM returns it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.loop import is_fsdp
from .prompts import IGNORE_INDEX


def lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal LM's own loss on a padded batch (the mean over its labelled tokens), and its tokens (for
    tokens/s)."""
    return model(**batch).loss, batch["attention_mask"].sum()


def peft_lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """PEFT's MetaMathQA loss (run.py train): the summed token losses over the batch's attended tokens
    (num_items_in_batch = attention_mask.sum())."""
    tokens = batch["attention_mask"].sum()
    return model(**batch, num_items_in_batch=tokens).loss, tokens


def collator(tokenizer: Any):
    """Pads input_ids / attention_mask / labels of a batch (labels with -100), to a multiple of 8."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, pad_to_multiple_of=8, label_pad_token_id=IGNORE_INDEX,
                                  return_tensors="pt")


def peft_collator(tokenizer: Any):
    """PEFT's MetaMathQA batches (run.py train): right-padded; labels are the input ids, the first padding position
    labelled EOS (so the model learns to stop; the longest sequence of a batch has none), the rest -100."""
    def collate(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n], mask[i, :n], labels[i, :n] = torch.tensor(row["input_ids"]), 1, torch.tensor(row["labels"])
            if n < width:
                labels[i, n] = tokenizer.eos_token_id
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def checkpoint_activations(model: nn.Module) -> nn.Module:
    """transformers' activation (gradient) checkpointing, non-reentrant (frozen embeddings need no grad trick)."""
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x's name
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


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
             desc: str = "generating", max_length: int | None = None) -> tuple[list[str], dict[str, float]]:
    """The continuation of every prompt (greedy, or beam search with `num_beams`; no sampling), each process
    generating an equal share in left-padded batches (longest first) with the KV cache; every process returns all
    of them in order, and generated tokens/s. With `max_length`, a batch's prompt and continuation together stop
    there (PEFT's min(prompt + max_new_tokens, max_length) per batch)."""
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
            width = batch["input_ids"].shape[1]
            room = max_new_tokens if max_length is None else max(1, min(max_new_tokens, max_length - width))
            with accelerator.autocast():
                out = generator.generate(**batch, generation_config=config, max_new_tokens=room,
                                         synced_gpus=is_fsdp(accelerator),
                                         tokenizer=tokenizer if stop_strings else None)
            new = out[:, batch["input_ids"].shape[1]:]
            new_tokens += int((new != tokenizer.pad_token_id).sum())
            done += zip(chunk, tokenizer.batch_decode(new, skip_special_tokens=True))
    seconds = time.perf_counter() - start
    texts = dict(gather_object(done))  # padding repeats prompts at the end: every copy has the same text
    rate = accelerator.reduce(torch.tensor(float(new_tokens), device=accelerator.device), reduction="sum").item()
    return [cut_at_stop(texts[i], stop_strings) for i in range(len(prompts))], {
        "generated_tokens_per_s": rate / max(seconds, 1e-9), "generation_seconds": seconds}
