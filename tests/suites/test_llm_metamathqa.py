"""PEFT's MetaMathQA protocol as a task of the reasoning suite (task metamathqa, suite peft-metamathqa), checked
against PEFT's own files at a pinned commit (tests/suites/data/peft_metamathqa/README.md), and the per-source
recipes of the lineage tasks: their citations, the run's precision, the published rows as printed."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch

from benchmarks.core.errors import SetupError
from benchmarks.core.recipe import Recipe
from benchmarks.core.runner import Job
from benchmarks.core.sweep import Run
from benchmarks.llm import cli as llm
from benchmarks.llm import recipes as R
from benchmarks.llm.generate import peft_collator, peft_lm_loss
from benchmarks.llm.peft_board import board, published
from benchmarks.llm.plan import run_precision
from benchmarks.llm.tasks import METAMATHQA
from benchmarks.llm.training_data import length_buckets, within_chars

DATA = Path(__file__).resolve().parent / "data" / "peft_metamathqa"
PEFT = json.loads((DATA / "default_training_params.json").read_text())


# --- the recipe is PEFT's --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["neat", "lora", "dora", "peanut"])
def test_the_shared_recipe_is_peft_s_default_training_params(method):
    recipe = R.recipe_for("metamathqa", method)
    assert (recipe.lr, recipe.weight_decay) == (PEFT["optimizer_kwargs"]["lr"], PEFT["optimizer_kwargs"]["weight_decay"])
    assert (recipe.batch_size, recipe.micro_batch, recipe.clip_grad) == (PEFT["batch_size"], PEFT["batch_size"],
                                                                        PEFT["grad_norm_clip"])
    assert (recipe.schedule, recipe.warmup, recipe.warmup_steps) == (PEFT["lr_scheduler"], 0.1, None)
    assert recipe.epochs * recipe.data["train_rows"] // recipe.batch_size == PEFT["max_steps"]   # 5,000 steps
    data = recipe.data
    assert (data["cutoff_len"], data["eval_batch_size"], data["max_new_tokens"], data["max_length"]) == (
        PEFT["max_seq_length"], PEFT["batch_size_eval"], {"gsm8k_peft": PEFT["generation_kwargs"]["max_new_tokens"]},
        PEFT["generation_kwargs"]["max_length"])
    assert (data["dtype"], data["num_beams"], data["train_on_inputs"], data["score_with_prompt"]) == (
        "bf16", 1, True, True)
    assert data["targets"] == ("q_proj", "v_proj") and data["bucket_rows"] == 4 * 20 and data["char_limit"] == 1300


def test_the_adapters_are_peft_s_experiments():
    lora = json.loads((DATA / "lora_adapter_config.json").read_text())
    peanut = json.loads((DATA / "peanut_adapter_config.json").read_text())
    assert R.recipe_for("metamathqa", "lora").options == {"lora_r": lora["r"], "lora_alpha": lora["lora_alpha"],
                                                          "lora_dropout": lora["lora_dropout"]}
    for method in ("peanut", "neat"):   # NEAT beside PEANuT at PEANuT's config (our orientation: "in")
        options = R.recipe_for("metamathqa", method).options
        assert (options["rank"], options["depth"], options["activation"], options["scale"]) == (
            peanut["r"], 2 * peanut["depth"] + 2, peanut["act_fn"], peanut["scaling"])
    assert sorted(peanut["target_modules"]) == sorted(R.recipe_for("metamathqa", "peanut").data["targets"])


def test_the_template_is_peft_s_query_template():
    assert METAMATHQA.template.prompt("How many?") == PEFT["query_template"].format(query="How many?")
    assert METAMATHQA.template.prompt("How many?", train=False) == PEFT["query_template"].format(query="How many?")
    assert [t.name for t in METAMATHQA.tests] == ["gsm8k_peft"] and METAMATHQA.tests[0].answer_kind == "peft_number"


# --- the data as PEFT reads it ----------------------------------------------------------------------------------
def test_training_order_is_peft_s_bucket_iterator():
    recorded = json.loads((DATA / "bucket_order.json").read_text())
    order = length_buckets(recorded["lengths"], 80)
    assert [order[i:i + 4] for i in range(0, len(order), 4)] == recorded["batches"]


def test_the_character_filter_counts_query_space_response():
    import datasets

    rows = datasets.Dataset.from_dict({"instruction": ["a" * 600, "b" * 600, "c"], "output": ["x" * 699, "y" * 700,
                                                                                                  "z"]})
    kept = within_chars(rows, 1300)
    assert kept["instruction"] == ["a" * 600, "c"]   # 600 + 1 + 700 = 1301 characters is one too many


def test_peft_labels_train_the_first_padding_eos_and_normalise_by_attended_tokens():
    tok = argparse.Namespace(pad_token_id=0, eos_token_id=2)
    rows = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    batch = peft_collator(tok)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 9, 2]]   # the longest row has no padding EOS

    class Seen(torch.nn.Module):
        def forward(self, **kw):
            self.kw = kw
            return argparse.Namespace(loss=torch.tensor(1.0))

    model = Seen()
    _, tokens = peft_lm_loss(model, batch)
    assert tokens.item() == 5 and model.kw["num_items_in_batch"].item() == 5


# --- the suite, the plan, the board -----------------------------------------------------------------------------
def test_dry_run_shows_the_peft_metamathqa_plan(capsys):
    assert llm.main(["--suite", "peft-metamathqa", "--dry-run", "--seeds", "0"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Plan: 4 runs (1 seed(s)), model meta-llama/Llama-3.2-3B.")
    assert ("| neat | metamathqa | 0.0001 | 4 | 4 x 1 x 1 | 1 | warm-up 0.1, cosine, wd 0.1 | rank=32, depth=2, "
            "activation=relu, scale=2.0, orientation in | q_proj,v_proj | cutoff 768, prompt trained, rows <= 1300 "
            "chars, first 20,000 rows, length_buckets of 80 (unshuffled), peft labels | greedy, max new tokens "
            "gsm8k_peft 300 (prompt + new at most 800) |") in printed
    assert "| peanut | metamathqa |" in printed and "orientation out" in printed
    assert ("| metamathqa: gsm8k_peft | openai/gsm8k @ 740312add88f781978c0658806c59bc2815b9866 (main) | test | "
            "test 1,319 |") in printed
    assert "| model | meta-llama/Llama-3.2-3B @ 13afe5124825b4f3751f836b40dafda64c1ed062 | pretrained weights |" in printed


def test_a_named_method_without_a_recipe_on_a_task_is_refused(capsys):
    with pytest.raises(SystemExit):
        llm.main(["--tasks", "metamathqa", "--methods", "neat,pissa", "--dry-run"])
    assert capsys.readouterr().err.strip().endswith(
        "error: No recipe for pissa on task metamathqa: its source publishes none; methods with one: dora, lora, "
        "neat, peanut.")


def _result(method: str, seed: int, accuracy: float) -> dict:
    return {"method": method, "seed": seed, "lr": 1e-4, "scores": {"gsm8k_peft": accuracy}, "train_seconds": 900.0,
            "peak_reserved_with_generation_mib": 20000.0, "mean_reserved_mib": 13000.0, "train_tokens_per_s": 7000.0,
            "method_params": 7340032, "device": {"name": "NVIDIA H200"}}


def test_the_board_puts_peft_s_published_rows_beside_ours():
    text = board([_result("neat", 0, 0.47), _result("neat", 1, 0.49)])
    ours = next(line for line in text.splitlines() if line.startswith("| **neat (ours)**"))
    assert ours == ("| **neat (ours)** | 0.0001 | 48.0 ± 1.4 | 900 ± 0 | 20.97 ± 0.00 | 13.63 ± 0.00 | 7000 ± 0 | "
                    "7,340,032 | NVIDIA H200 | 2 seed(s) |")
    lora = next(r for r in published()["results"] if r["experiment"] == "lora/llama-3.2-3B-rank32")
    assert (round(100 * lora["test_accuracy"], 1), lora["peak_reserved_bytes"], lora["trainable_params"]) == (
        47.8, 22292725760, 9175040)
    assert "| lora/llama-3.2-3B-rank32 | 0.0001 | 47.8 | 942 | 22.29 | 14.40 |" in text
    assert "| peanut/llama-3.2-3B-rank32-relu-depth0-s2.0 | 0.0001 | 44.9 | 1339 | 25.21 | 17.29 |" in text
    assert published()["commit"] == "5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40"
    assert all(r["source"].endswith("@" + published()["commit"]) for r in published()["results"])


# --- the lineage recipes ------------------------------------------------------------------------------------------
def test_every_source_a_recipe_cites_is_pinned_in_the_table():
    defined = dict(re.findall(r"^  (\S+)\s+\S.*?@([0-9a-f]{40})", R.__doc__, flags=re.M))
    cited = {name for recipe in R.RECIPES.values() for text in recipe.sources.values()
             for name in re.findall(r"\b(LA-\w+|DoRA-\w+|MI-\w+|NEAT-\w+|PEFT-\w+)", text)}
    assert cited and cited <= set(defined), cited - set(defined)


def test_neat_trains_as_the_rows_it_is_compared_with():
    for task, rows in (("commonsense", "lora"), ("math", "lora")):
        neat, theirs = R.recipe_for(task, "neat"), R.recipe_for(task, rows)
        assert (neat.epochs, neat.batch_size, neat.data) == (theirs.epochs, theirs.batch_size, theirs.data)
        assert neat.lr == 3e-4 and neat.sources["lr"] == "NEAT-sh (lr 3e-4)"
    commonsense = R.recipe_for("commonsense", "lora").data
    assert (commonsense["train_on_inputs"], commonsense["val_set_size"], commonsense["eval_steps"]) == (True, 120, 80)
    math = R.recipe_for("math", "milora").data
    assert (math["train_on_inputs"], math["train_rows"], math["cutoff_len"], math["dtype"]) == (
        False, 100_000, 2048, "fp32+bf16")
    assert R.recipe_for("commonsense", "dora", "meta-llama/Meta-Llama-3-8B").lr == 1e-4


def _job(task: str, dtype: str) -> Job:
    return Job(Run("neat", task, 0, 1e-4), "neat", Recipe(1e-4, 1, 4, data={"dtype": dtype}), None, 4, 1)


def test_one_precision_per_run():
    args = argparse.Namespace(dtype="auto")
    assert run_precision(args, [_job("commonsense", "fp16")], cuda=True) == "fp16"
    assert run_precision(args, [_job("commonsense", "fp16"), _job("math", "fp32+bf16")], cuda=False) == "fp32"
    with pytest.raises(SetupError) as err:
        run_precision(args, [_job("commonsense", "fp16"), _job("math", "fp32+bf16")], cuda=True)
    assert str(err.value) == ("These runs' sources train in different precisions (commonsense fp16, math fp32+bf16), "
                              "and one process has one: run the tasks separately, or pass --dtype.")
    assert run_precision(argparse.Namespace(dtype="bf16"), [_job("math", "fp32+bf16")], cuda=True) == "bf16"
