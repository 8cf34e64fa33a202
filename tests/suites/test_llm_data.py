"""The reasoning suite's data: the lineage's prompt templates, label masking, reference answers derived from the
sources' own fields, loading local JSON in the real files' schemas, and the recipe tables (answer scoring:
test_llm_answers.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks.llm import answers as A
from benchmarks.llm import published as P
from benchmarks.llm import recipes as R
from benchmarks.llm.data import ReasoningDataError, load_split, load_task
from benchmarks.llm.prompts import IGNORE_INDEX, supervised_example
from benchmarks.llm.tasks import COMMONSENSE, LLM_ADAPTERS, MATH, METAMATH

pytestmark = pytest.mark.usefixtures("datasets_cache")  # arrow files in the test's own folder




# --- templates ---------------------------------------------------------------------------------------------
PAD = " " * 16


def test_llm_adapters_templates_verbatim():
    # finetune.py (training): two spaces after "request.", an indented blank line before "### Response:"
    assert LLM_ADAPTERS.prompt("Is it?") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        f"  \n\n{PAD}### Instruction:\n{PAD}Is it?\n{PAD}\n{PAD}### Response:\n{PAD}")
    # commonsense_evaluate.py (generation): one space, an empty blank line
    assert LLM_ADAPTERS.prompt("Is it?", train=False) == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        f" \n\n{PAD}### Instruction:\n{PAD}Is it?\n\n{PAD}### Response:\n{PAD}")
    assert LLM_ADAPTERS.prompt("Is it?", "ctx").endswith(f"### Input:\n{PAD}ctx\n{PAD}\n{PAD}### Response:\n{PAD}")


def test_metamath_templates_verbatim():
    head = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nWhat is 2+2?\n\n### Response:")
    assert METAMATH.prompt("What is 2+2?") == head
    assert METAMATH.prompt("What is 2+2?", train=False) == head + " Let's think step by step."


class CharTokenizer:
    """One token per character (ids 3..), EOS 2: masking can be checked by counting characters."""

    eos_token_id = 2

    def __call__(self, text: str, truncation: bool = False, max_length: int | None = None) -> dict:
        ids = [3 + ord(c) % 200 for c in text]
        return {"input_ids": ids[:max_length] if truncation else ids}


def test_prompt_tokens_are_masked_and_eos_appended():
    example = {"instruction": "Q?", "input": "", "output": "the correct answer is true", "answer": "true"}
    prompt = LLM_ADAPTERS.prompt("Q?")
    full = supervised_example(LLM_ADAPTERS, example, CharTokenizer(), cutoff_len=512)
    n = len(prompt)
    assert full["input_ids"] == CharTokenizer()(prompt + example["output"])["input_ids"] + [2]
    assert full["labels"] == [IGNORE_INDEX] * n + full["input_ids"][n:]
    assert full["attention_mask"] == [1] * (n + len(example["output"]) + 1)


def test_truncation_keeps_the_mask_and_drops_eos():
    example = {"instruction": "Q?", "input": "", "output": "abcdefghij", "answer": "x"}
    n = len(LLM_ADAPTERS.prompt("Q?"))
    cut = supervised_example(LLM_ADAPTERS, example, CharTokenizer(), cutoff_len=n + 4)
    assert len(cut["input_ids"]) == n + 4 and cut["input_ids"][-1] != 2          # no room for EOS
    assert cut["labels"][n:] == cut["input_ids"][n:] and set(cut["labels"][:n]) == {IGNORE_INDEX}
    short = supervised_example(LLM_ADAPTERS, example, CharTokenizer(), cutoff_len=n - 5)  # prompt alone too long
    assert short["labels"] == [IGNORE_INDEX] * (n - 5)


# --- answer extraction ----------------------------------------------------------------------------------------
def test_reference_answers_are_derived_from_the_sources_own_fields():
    assert A.derive_answer("metamath", "We add.\nThe answer is: 3/4") == "3/4"
    assert A.derive_answer("gsm8k", "So 1,200 in all.\n#### 1,200") == "1200"
    assert A.derive_answer("boxed", "Hence $\\boxed{\\{1,2\\}}$.") == "\\{1,2\\}"
    assert A.derive_answer("gsm8k", "no marker") is None


# --- loading local copies --------------------------------------------------------------------------------------
def _json(path, rows, lines=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) if lines else json.dumps(rows))


def test_local_files_in_the_lineages_layouts_and_native_columns(tmp_path):
    row = {"instruction": "is it? Answer format: true/false", "input": "", "output": "the correct answer is true",
           "answer": "true"}
    _json(tmp_path / "commonsense_170k.json", [row] * 3)
    _json(tmp_path / "boolq" / "test.json", [{k: v for k, v in row.items() if k != "input"}])  # input may be missing
    _json(tmp_path / "MetaMathQA-395K.json", [{"query": "2+2?", "response": "2+2=4.\nThe answer is: 4",
                                               "type": "GSM_AnsAug", "original_question": "2+2?"}])
    _json(tmp_path / "gsm8k_test.jsonl", [{"question": "3+3?", "answer": "3+3=<<3+3=6>>6\n#### 6"}], lines=True)
    _json(tmp_path / "MATH_test.jsonl", [{"instruction": "1/2+1/2?", "output": "It is $\\boxed{1}$."}], lines=True)
    sense = load_task(COMMONSENSE, tmp_path, tests=["boolq"], accept_subset=True)
    assert len(sense["train"]) == 3 and sense["tests"]["boolq"][0] == {**row, "input": ""}
    math = load_task(MATH, tmp_path, accept_subset=True)
    assert math["train"][0] == {"instruction": "2+2?", "input": "", "output": "2+2=4.\nThe answer is: 4", "answer": "4"}
    assert math["tests"]["gsm8k"][0]["answer"] == "6" and math["tests"]["gsm8k"][0]["instruction"] == "3+3?"
    assert math["tests"]["MATH"][0]["answer"] == "1"


def test_a_file_without_the_fields_names_what_is_missing(tmp_path):
    _json(tmp_path / "piqa" / "test.json", [{"question": "q", "label": 1}])
    with pytest.raises(ReasoningDataError) as err:
        load_split("PIQA test set", COMMONSENSE.test("piqa").source, tmp_path, accept_subset=True)
    assert str(err.value) == (f"{tmp_path / 'piqa' / 'test.json'} lacks field(s) ['instruction', 'output', 'answer'] "
                              "(it has ['label', 'question']); expected instruction, input, output, answer.")
    _json(tmp_path / "MetaMathQA-395K.json", [{"query": "q"}])
    with pytest.raises(ReasoningDataError, match=r"lacks field\(s\) \['output', 'answer'\] .* \(or query, response\)"):
        load_split("math training data", MATH.train, tmp_path, accept_subset=True)


def test_missing_empty_and_broken_files_are_one_clear_error(tmp_path):
    with pytest.raises(ReasoningDataError) as err:
        load_split("BoolQ test set", COMMONSENSE.test("boolq").source, tmp_path)
    assert str(err.value).startswith(
        "BoolQ test set (https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/"
        "ae07636f948d5536c3566267bb467661bfa4e90b/dataset/boolq/test.json) "
        f"is not available: --data-dir has none of {tmp_path / 'boolq' / 'test.json'}, "
        f"{tmp_path / 'boolq' / 'test.jsonl'}. Download it where the network is reachable and pass --data-dir DIR")
    _json(tmp_path / "boolq" / "test.json", [])
    with pytest.raises(ReasoningDataError, match=r"boolq/test.json has no examples\.$"):
        load_split("BoolQ test set", COMMONSENSE.test("boolq").source, tmp_path)
    (tmp_path / "boolq" / "test.json").write_text('[{"instruction": "broken"')
    with pytest.raises(ReasoningDataError, match=r"test.json is not readable JSON or JSON lines"):
        load_split("BoolQ test set", COMMONSENSE.test("boolq").source, tmp_path)


# --- the recipe tables ---------------------------------------------------------------------------------------
def test_the_recipe_tables_name_the_test_sets_as_the_data_does():
    assert R.TASK_TESTS == {"commonsense": ("boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy",
                                            "ARC-Challenge", "openbookqa"),
                            "math": ("gsm8k", "MATH"), "metamathqa": ("gsm8k_peft",)}   # the papers' column order
    for row in P.ROWS:
        task = next(t for t, tests in R.TASK_TESTS.items() if set(row.scores) - {"average"} <= set(tests))
        assert set(row.scores) - {"average"} == set(R.TASK_TESTS[task]) and row.source


@pytest.mark.parametrize("key", list(R.RECIPES))
def test_every_recipe_value_says_where_it_comes_from(key):
    recipe = R.RECIPES[key]
    assert recipe.uncited() == [], key
    assert ("rank" in recipe.options) != ("lora_r" in recipe.options)
    assert set(recipe.data) >= {"cutoff_len", "num_beams", "max_new_tokens", "stop_strings"}
    assert set(recipe.data["max_new_tokens"]) == set(R.TASK_TESTS[key[0]])
