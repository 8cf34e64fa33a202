"""Offline GLUE assets: a random tiny RoBERTa with a WordLevel tokenizer and generated SST-2 / MRPC / STS-B data."""

from __future__ import annotations

import json
import random

import pytest
import torch


POSITIVE, NEGATIVE = ["good", "great", "fine", "nice"], ["bad", "poor", "awful", "dull"]


FILLER = ["the", "film", "movie", "plot", "was", "a", "very", "story", "it", "and"]


SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


HIDDEN, LAYERS = 16, 3


def _sentence(rng: random.Random, n: int = 4) -> list[str]:
    return rng.sample(FILLER, n)


def _sst2(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        label = i % 2
        words = _sentence(rng) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"sentence": " ".join(words), "label": label, "idx": i})
    return rows


def _mrpc(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        first, label = _sentence(rng, 5), i % 2
        second = rng.sample(first, 5) if label else _sentence(rng, 5)
        rows.append({"sentence1": " ".join(first), "sentence2": " ".join(second), "label": label, "idx": i})
    return rows


def _stsb(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        first, keep = _sentence(rng, 5), i % 6
        second = first[:keep] + rng.sample(POSITIVE + NEGATIVE, 5 - keep)
        rows.append({"sentence1": " ".join(first), "sentence2": " ".join(second), "label": float(keep), "idx": i})
    return rows


@pytest.fixture(scope="module")
def offline_assets(tmp_path_factory):
    """DIR/model: a random 3-layer RoBERTa with a WordLevel tokenizer trained on the generated text;
    DIR/data: sst2 as CSV, mrpc as JSON lines, stsb as a save_to_disk folder."""
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaForMaskedLM

    root, rng = tmp_path_factory.mktemp("glue"), random.Random(0)
    splits = {task: {"train": make(rng, 24), "validation": make(rng, 12)}
              for task, make in (("sst2", _sst2), ("mrpc", _mrpc), ("stsb", _stsb))}
    (root / "data" / "sst2").mkdir(parents=True)
    for split, rows in splits["sst2"].items():
        datasets.Dataset.from_list(rows).to_csv(str(root / "data" / "sst2" / f"{split}.csv"))
    (root / "data" / "mrpc").mkdir()
    for split, rows in splits["mrpc"].items():
        (root / "data" / "mrpc" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in splits["stsb"].items()}).save_to_disk(
        str(root / "data" / "stsb"))

    text = [r[k] for task in splits.values() for rows in task.values() for r in rows for k in r if "sentence" in k]
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(text, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                   model_input_names=["input_ids", "attention_mask"])
    config = RobertaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                           num_attention_heads=2, intermediate_size=32, max_position_embeddings=40, type_vocab_size=1)
    torch.manual_seed(0)
    RobertaForMaskedLM(config).save_pretrained(root / "model")
    fast.save_pretrained(root / "model")
    return root

