"""A task's training split as a recipe's source prepared it, before the loop sees it.

In order, each step only when the recipe's `data` asks for it:
  char_limit  keep rows whose `instruction + " " + output` has at most this many characters (PEFT's MetaMathQA
              benchmark: data.py get_filtered_dataset, CHAR_LIMIT 1300);
  train_rows  keep the first N rows in stored order (MiLoRA's train.py split "train[:100000]"; PEFT's 5,000
              steps of 4 reach the first 20,000);
  tokenise    prompt + output, truncated to cutoff_len; the prompt masked unless train_on_inputs; EOS appended
              when there is room, except for labels="peft" (PEFT appends none: the collator labels the first
              padding EOS, see generate.peft_collator);
  order       "length_buckets": PEFT's BucketIterator (utils.py): consecutive buckets of `bucket_rows` rows, each
              sorted longest first (torch.argsort(descending=True), as PEFT calls it); the loop then reads them in
              this order, unshuffled. Otherwise the loop shuffles from the run's seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .prompts import supervised_example
from .tasks import Template


def key(data: Mapping[str, Any]) -> tuple:
    """What decides the prepared split (runs with equal keys share one)."""
    return tuple(data.get(k) for k in ("cutoff_len", "train_on_inputs", "char_limit", "train_rows", "order",
                                       "bucket_rows", "labels"))


def within_chars(rows: Any, limit: int | None) -> Any:
    if not limit:
        return rows
    keep = [i for i, (q, r) in enumerate(zip(rows["instruction"], rows["output"])) if len(f"{q} {r}") <= limit]
    return rows.select(keep)


def length_buckets(lengths: list[int], bucket: int) -> list[int]:
    """PEFT's BucketIterator order: row indices bucket by bucket, each bucket longest first."""
    order: list[int] = []
    for start in range(0, len(lengths), bucket):
        part = torch.tensor(lengths[start:start + bucket])
        order += [start + int(i) for i in torch.argsort(part, descending=True)]
    return order


def prepared(rows: Any, template: Template, tokenizer: Any, data: Mapping[str, Any]) -> Any:
    """The training split of `rows` (instruction / input / output / answer) as `data` says (module docstring):
    input_ids / attention_mask / labels."""
    rows = within_chars(rows, data.get("char_limit"))
    if data.get("train_rows"):
        rows = rows.select(range(min(int(data["train_rows"]), len(rows))))
    eos = data.get("labels") != "peft"
    tokens = rows.map(lambda row: supervised_example(template, row, tokenizer, data["cutoff_len"],
                                                     bool(data.get("train_on_inputs", False)), eos=eos),
                      remove_columns=rows.column_names, desc="tokenizing")
    if data.get("order") == "length_buckets":
        tokens = tokens.select(length_buckets([len(ids) for ids in tokens["input_ids"]], int(data["bucket_rows"])))
    return tokens
