"""Prompts and supervised examples: the template filled in, tokens of the prompt masked out of the loss.

As LLM-Adapters' finetune.py does: the whole text (prompt + response) is tokenised and truncated to `cutoff_len`
tokens, EOS is appended when there is room; with train_on_inputs=False the labels of the prompt's tokens (the
prompt tokenised alone) are -100, so only the response is learned, with train_on_inputs=True (LLM-Adapters' and
DoRA's default) every token is.
"""

from __future__ import annotations

from typing import Any

from .tasks import Template

IGNORE_INDEX = -100  # labels that cross-entropy skips


def train_prompt(template: Template, example: dict[str, Any]) -> str:
    return template.prompt(example["instruction"], example.get("input") or "", train=True)


def eval_prompt(template: Template, example: dict[str, Any]) -> str:
    return template.prompt(example["instruction"], example.get("input") or "", train=False)


def supervised_example(template: Template, example: dict[str, Any], tokenizer: Any, cutoff_len: int,
                       train_on_inputs: bool = False, eos: bool = True) -> dict[str, list[int]]:
    """input_ids, attention_mask and labels of one training example (prompt tokens labelled -100 unless
    `train_on_inputs`; EOS appended when there is room, unless `eos` is False)."""
    prompt = train_prompt(template, example)
    ids = tokenizer(prompt + example["output"], truncation=True, max_length=cutoff_len)["input_ids"]
    if eos and ids[-1] != tokenizer.eos_token_id and len(ids) < cutoff_len:
        ids = [*ids, tokenizer.eos_token_id]
    prompt_len = 0 if train_on_inputs else len(tokenizer(prompt, truncation=True, max_length=cutoff_len)["input_ids"])
    labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
