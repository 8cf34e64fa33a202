"""The reasoning suite's offline assets: tiny generated data in the real files' schemas and layouts, a
byte-level BPE tokenizer trained on it, and a tiny random LLaMA, cached as a `--data-dir` and a `--model-path`.

Data (LLM-Adapters' layout and fields for commonsense; MetaMathQA's, GSM8K's and MetaMath's MATH file's own
columns for math, so the loader's renaming and answer reading run too):
  commonsense_170k.json, <test>/test.json      instruction / input / output "the correct answer is X" / answer
  MetaMathQA-395K.json                          query / response ("... The answer is: N") / type
  gsm8k_test.jsonl                              question / answer ("... #### N")
  MATH_test.jsonl                               instruction / output ("... \\boxed{N}")
Commonsense questions ask which option belongs to a category; math questions add or multiply small numbers.
The tiny LLaMA is pre-trained here (all weights, some seconds) on the same prompts with *random* answers of
the right form, so it knows the templates but not the rules: fine-tuning an adapter has something to learn.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from .tasks import COMMONSENSE, TASKS

from .recipes import SMOKE_PRETRAIN_EPOCHS as PRETRAIN_EPOCHS

GENERATOR_VERSION = 6   # 6: the MetaMathQA task (PEFT's template) joins pre-training
SIZES = {"commonsense_train": 288, "math_train": 192, "test": 8}
CATEGORIES = {
    "colour": ["red", "blue", "green", "yellow", "purple", "orange"],
    "animal": ["cat", "dog", "horse", "mouse", "bird", "fish"],
    "fruit": ["apple", "pear", "plum", "grape", "lemon", "melon"],
    "tool": ["hammer", "saw", "drill", "wrench", "chisel", "spade"],
}
MODEL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=512)
SPECIAL = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def _options(rng: random.Random, n: int) -> tuple[str, list[str], int]:
    """A category, n words of which exactly one belongs to it, and the index of that one."""
    category, *others = rng.sample(list(CATEGORIES), 4)
    words = [rng.choice(CATEGORIES[category])] + [rng.choice(CATEGORIES[o]) for o in others[:n - 1]]
    words += [rng.choice(CATEGORIES[rng.choice(others)]) for _ in range(n - len(words))]
    order = rng.sample(range(n), n)
    return category, [words[i] for i in order], order.index(0)


def _listed(label: str, words: list[str]) -> str:
    return "".join(f"\n\n{label}{i + 1}: {w}" for i, w in enumerate(words))


def commonsense_example(test: str, rng: random.Random) -> dict[str, str]:
    """One example in the instruction style of LLM-Adapters' file for `test`."""
    if test == "boolq":
        category, word = rng.choice(list(CATEGORIES)), rng.choice(sum(CATEGORIES.values(), []))
        answer = "true" if word in CATEGORIES[category] else "false"
        instruction = (f"Please answer the following question with true or false, question: is {word} a {category}?"
                       "\n\nAnswer format: true/false")
    else:
        label, prefix, n, ask = {
            "piqa": ("Solution", "solution", 2, "Please choose the correct solution to the question: "),
            "hellaswag": ("Ending", "ending", 4, "Please choose the correct ending to complete the given sentence: "),
            "winogrande": ("Option", "option", 2, "Please choose the correct answer to fill in the blank to complete "
                                                  "the given sentence: "),
        }.get(test, ("Answer", "answer", 3 if test == "social_i_qa" else 4,
                     "Please choose the correct answer to the question: "))
        category, words, right = _options(rng, n)
        formats = "/".join(f"{prefix}{i + 1}" for i in range(n))
        instruction = f"{ask}which one is a {category}?{_listed(label, words)}\n\nAnswer format: {formats}"
        answer = f"{prefix}{right + 1}"
    return {"instruction": instruction, "input": "", "output": f"the correct answer is {answer}", "answer": answer}


def math_example(rng: random.Random) -> tuple[str, int, str]:
    """A question, its answer and the worked line."""
    a, b = rng.randint(1, 5), rng.randint(1, 5)  # 50 distinct questions: a tiny model can learn them
    if rng.random() < 0.5:
        return f"What is {a} plus {b}?", a + b, f"{a} + {b} = {a + b}"
    return f"What is {a} times {b}?", a * b, f"{a} * {b} = {a * b}"


def write_data(folder: Path, seed: int = 0) -> Path:
    """The generated data files under `folder` (a --data-dir)."""
    rng = random.Random(seed)
    tests = [t.name for t in COMMONSENSE.tests]
    folder.mkdir(parents=True, exist_ok=True)
    train = [commonsense_example(tests[i % len(tests)], rng) for i in range(SIZES["commonsense_train"])]
    (folder / "commonsense_170k.json").write_text(json.dumps(train, indent=1))
    for test in tests:
        (folder / test).mkdir(exist_ok=True)
        rows = [commonsense_example(test, rng) for _ in range(SIZES["test"])]
        (folder / test / "test.json").write_text(json.dumps(rows, indent=1))
    metamath = []
    for _ in range(SIZES["math_train"]):
        question, answer, work = math_example(rng)
        metamath.append({"query": question, "response": f"We compute {work}.\nThe answer is: {answer}",
                         "type": "GSM_AnsAug", "original_question": question})
    (folder / "MetaMathQA-395K.json").write_text(json.dumps(metamath, indent=1))
    gsm8k, hendrycks = [], []
    for _ in range(SIZES["test"]):
        question, answer, work = math_example(rng)
        gsm8k.append({"question": question, "answer": f"{work} <<{work.replace(' ', '')}>>\n#### {answer}"})
        question, answer, work = math_example(rng)
        left = work.split(" = ")[0]
        hendrycks.append({"instruction": question.replace("What is", "Compute"),
                          "output": "We have $" + left + " = \\boxed{" + str(answer) + "}$."})
    (folder / "gsm8k_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gsm8k))
    (folder / "MATH_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hendrycks))
    return folder


def _texts(data_dir: Path) -> list[str]:
    """Every prompt and response the suite will tokenise (both templates of both tasks)."""
    from .data import load_task
    from .prompts import train_prompt
    from .prompts import eval_prompt

    texts = []
    for task in TASKS.values():
        loaded = load_task(task, data_dir, generated=True)
        for split in [loaded["train"], *loaded["tests"].values()]:
            for row in split:
                texts += [train_prompt(task.template, row) + row["output"], eval_prompt(task.template, row)]
    return texts


def _random_answers(data_dir: Path, seed: int) -> list[dict[str, str]]:
    """The training examples of both tasks with their answers replaced by random ones of the same form."""
    from .data import load_split
    from .answers import CHOICES

    rng, rows = random.Random(seed), []
    for task in TASKS.values():
        for row in load_split(task.name, task.train, data_dir, generated=True):
            kind = next((k for k, words in CHOICES.items() if row["answer"] in words), None)
            wrong = rng.choice(CHOICES[kind]) if kind else str(rng.randint(1, 25))
            rows.append({**row, "output": row["output"].replace(row["answer"], wrong), "task": task.name})
    return rows


def pretrain(model, tokenizer, data_dir: Path, seed: int = 0, epochs: int = PRETRAIN_EPOCHS) -> float:
    """Full training of the tiny model on every prompt (training and test templates: a real LLM reads both
    alike, a tiny one must see both) followed by a random answer of the right form; AdamW, lr 2e-3, batch 16.
    Returns the last epoch's mean loss."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from .prompts import IGNORE_INDEX, eval_prompt, train_prompt

    examples = []
    for row in _random_answers(data_dir, seed):
        template = TASKS[row["task"]].template
        for prompt in (train_prompt(template, row), eval_prompt(template, row)):
            ids = tokenizer(prompt + row["output"])["input_ids"] + [tokenizer.eos_token_id]
            examples.append({"input_ids": ids, "labels": ids})
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    loader = torch.utils.data.DataLoader(examples, batch_size=16, shuffle=True, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        losses = []
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    return sum(losses) / len(losses)


def write_model(folder: Path, data_dir: Path, seed: int = 0, pretrain_epochs: int = PRETRAIN_EPOCHS) -> Path:
    """A byte-level BPE tokenizer trained on the data and a tiny LLaMA pre-trained on it with random answers,
    saved as one transformers folder."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    # every whitespace character its own token: a prompt ending in spaces (LLM-Adapters' template) then
    # tokenises as a prefix of prompt + response, as it does at training time
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_texts(data_dir), trainers.BpeTrainer(
        vocab_size=512, special_tokens=list(SPECIAL.values()), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, model_max_length=MODEL["max_position_embeddings"],
                                        **SPECIAL)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **MODEL)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if pretrain_epochs:
        loss = pretrain(model, tokenizer, data_dir, seed, pretrain_epochs)
        print(f"pre-trained the smoke LLaMA on the generated prompts with random answers: loss {loss:.3f}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def assets(cache_dir: str | os.PathLike, pretrain_epochs: int = PRETRAIN_EPOCHS) -> tuple[Path, Path]:
    """(data folder, model folder), generated once per setting and cached under `cache_dir`."""
    key = json.dumps({"version": GENERATOR_VERSION, "sizes": SIZES, "model": MODEL, "pretrain": pretrain_epochs},
                     sort_keys=True)
    folder = Path(cache_dir) / f"smoke-llm-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if not (folder / "model" / "config.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
        tmp.chmod(0o755)
        write_model(tmp / "model", write_data(tmp / "data"), pretrain_epochs=pretrain_epochs)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / "data", folder / "model"
