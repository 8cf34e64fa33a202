"""neat_text.reasoning: the lineage's prompt templates, label masking, answer extraction on real-looking
generations (malformed ones too), loading local JSON in the real files' schemas, and the recipe tables."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from benchmarks import llm_recipes as R
from neat_text.reasoning import IGNORE_INDEX, TASKS, ReasoningDataError, load_split, load_task, supervised_example
from neat_text.reasoning import answers as A
from neat_text.reasoning.tasks import COMMONSENSE, LLM_ADAPTERS, MATH, METAMATH

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
@pytest.mark.parametrize("kind, generation, expected", [
    ("true_false", "the correct answer is true", "true"),
    ("true_false", "the correct answer is false</s>", "false"),
    ("true_false", "False. The passage says so", ""),                      # capitalised: not an answer word
    ("true_false", "the correct answer is true, not false", "true"),       # the first one counts
    ("solution", "the correct answer is solution2", "solution2"),
    ("solution", "the correct answer is solution", ""),
    ("answer", "the correct answer is answer5", "answer5"),
    ("answer", "answer3 answer1", "answer3"),
    ("ending", "the correct answer is ending4", "ending4"),
    ("ending", "", ""),
    ("option", "the correct answer is option1", "option1"),
    ("option", "Option1", ""),
    ("number", "Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\nThe answer is: 18", "18"),
    ("number", "The total is 1,234 dollars.", "1234"),
    ("number", "It drops to -3.5 degrees", "-3.5"),
    ("number", "The answer is: 7 apples, since 3 + 4 = 7 and 10 - 3", "7"),  # the stated answer, not the last
    ("number", "I do not know.", ""),
    ("boxed", "So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("boxed", "First \\boxed{2}, then \\boxed{3^{2}}", "3^{2}"),
    ("boxed", "We get 12.\nThe answer is: 12.\n", "12"),
    ("boxed", "The answer is: \\frac{3}{4}", "\\frac{3}{4}"),
    ("boxed", "\\boxed{1 + {2", ""),                                       # unbalanced braces
    ("boxed", "no answer here", ""),
])
def test_extraction_table(kind, generation, expected):
    assert A.extract(kind, generation) == expected


@pytest.mark.parametrize("kind, generation, label, correct", [
    ("true_false", "the correct answer is true", "true", True),
    ("true_false", "the correct answer is untrue", "true", True),   # LLM-Adapters matches inside words too
    ("answer", "the correct answer is answer2", "answer3", False),
    ("number", "The answer is: 18", "18", True),
    ("number", "The answer is: 18.0004", "18", True),                # within 1e-3, as LLM-Adapters
    ("number", "The answer is: 18.01", "18", False),
    ("number", "nothing", "18", False),
    ("boxed", "The answer is: 0.5", "\\frac12", True),
    ("boxed", "The answer is: \\dfrac{1}{2}", "\\frac{1}{2}", True),
    ("boxed", "The answer is: 1/2", "\\frac{1}{2}", True),
    ("boxed", "so \\boxed{90^\\circ}", "90", True),
    ("boxed", "The answer is: 5 \\text{ cm}", "5", True),
    ("boxed", "The answer is: x = 3", "3", True),
    ("boxed", "The answer is: \\left( 3, 4 \\right)", "(3,4)", True),
    ("boxed", "The answer is: 10\\%", "10", True),
    ("boxed", "The answer is: 3.0", "3", True),
    ("boxed", "The answer is: 4", "3", False),
    ("boxed", "no final answer", "3", False),
])
def test_scoring_table(kind, generation, label, correct):
    assert A.is_correct(kind, generation, label) is correct


@pytest.mark.parametrize("text, expected", [
    ("\\sqrt3", "\\sqrt{3}"), ("\\frac1{72}", "\\frac{1}{72}"), ("\\tfrac{2}{3}", "\\frac{2}{3}"),
    ("\\$5.50", "5.50"), (".25", "0.25"), (".5", "\\frac{1}{2}"), ("\\left[ 1, 2 \\right)", "[1,2)"), ("k = 7", "7"), ("a+b=c+d", "a+b=c+d"),
])
def test_math_normalisation(text, expected):
    assert A.normalize_math(text) == expected


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
    sense = load_task(COMMONSENSE, tmp_path, tests=["boolq"])
    assert len(sense["train"]) == 3 and sense["tests"]["boolq"][0] == {**row, "input": ""}
    math = load_task(MATH, tmp_path)
    assert math["train"][0] == {"instruction": "2+2?", "input": "", "output": "2+2=4.\nThe answer is: 4", "answer": "4"}
    assert math["tests"]["gsm8k"][0]["answer"] == "6" and math["tests"]["gsm8k"][0]["instruction"] == "3+3?"
    assert math["tests"]["MATH"][0]["answer"] == "1"


def test_a_file_without_the_fields_names_what_is_missing(tmp_path):
    _json(tmp_path / "piqa" / "test.json", [{"question": "q", "label": 1}])
    with pytest.raises(ReasoningDataError) as err:
        load_split("PIQA test set", COMMONSENSE.test("piqa").source, tmp_path)
    assert str(err.value) == (f"{tmp_path / 'piqa' / 'test.json'} lacks field(s) ['instruction', 'output', 'answer'] "
                              "(it has ['label', 'question']); expected instruction, input, output, answer.")
    _json(tmp_path / "MetaMathQA-395K.json", [{"query": "q"}])
    with pytest.raises(ReasoningDataError, match=r"lacks field\(s\) \['output', 'answer'\] .* \(or query, response\)"):
        load_split("math training data", MATH.train, tmp_path)


def test_missing_empty_and_broken_files_are_one_clear_error(tmp_path):
    with pytest.raises(ReasoningDataError) as err:
        load_split("BoolQ test set", COMMONSENSE.test("boolq").source, tmp_path)
    assert str(err.value).startswith(
        "BoolQ test set (https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/boolq/test.json) "
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
    assert R.TASK_TESTS == {name: tuple(t.name for t in task.tests) for name, task in TASKS.items()}
    for (task, _), rows in R.PUBLISHED.items():
        assert all(set(row.scores) == set(R.TASK_TESTS[task]) and row.source for row in rows.values())


def test_every_recipe_value_says_where_it_comes_from():
    cited = {"lr", "epochs", "batch_size", "warmup_steps", "rank", "dropout", "weight_decay", "max_grad_norm"}
    for (task, method), recipe in R.RECIPES.items():
        needed = cited | ({"alpha"} if recipe.alpha is not None else {"scale"})
        assert "all" in recipe.sources or needed <= set(recipe.sources), (task, method)
        assert (recipe.alpha is None) != (recipe.scale is None)
    for setting in R.TASK_SETTINGS.values():
        assert {f.name for f in fields(setting)} - {"sources", "stop_strings"} <= set(setting.sources) | {"targets"}


def test_published_averages_match_the_papers_tables():
    llama2 = R.PUBLISHED["commonsense", "meta-llama/Llama-2-7b-hf"]
    averages = {m: round(sum(r.scores.values()) / len(r.scores), 1) for m, r in llama2.items()}
    assert averages == {"lora": 77.6, "dora": 79.7, "pissa": 73.8, "milora": 79.2}  # the tables' Avg. column
    math = R.PUBLISHED["math", "meta-llama/Llama-2-7b-hf"]
    table = {"lora": 38.7, "pissa": 37.0, "milora": 40.7}  # averaged there before rounding: within 0.05
    assert all(abs(sum(math[m].scores.values()) / 2 - avg) <= 0.0501 for m, avg in table.items())


def test_the_report_lists_published_numbers_of_the_same_base_model_with_sources():
    from benchmarks.llm_report import published_table

    table = published_table("commonsense", "meta-llama/Llama-2-7b-hf").splitlines()
    assert table[0] == "Published for meta-llama/Llama-2-7b-hf (not run here):"
    assert table[2] == "| Method | BoolQ | PIQA | SIQA | HellaSwag | WinoGrande | ARC-e | ARC-c | OBQA | Avg. | Source |"
    assert table[4].startswith("| lora | 69.8 | 79.9 | 79.5 | 83.6 | 82.6 | 79.8 | 64.7 | 81.0 | 77.6 | DoRA README")
    assert published_table("math", "Qwen/Qwen2-7B") == ""   # nothing published for that model: nothing shown
