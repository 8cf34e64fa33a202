"""The reasoning tasks as data: where each split comes from, its columns, its prompt template, its answers.

Sources follow the lineage the NEAT paper compares against (LLM-Adapters -> DoRA / MiLoRA / PiSSA):

* commonsense: trained on Commonsense170K, LLM-Adapters' `ft-training_set/commonsense_170k.json` (Hub copy
  `zwhe99/commonsense_170k`), tested on LLM-Adapters' `dataset/<name>/test.json` files (BoolQ, PIQA, SIQA,
  HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA), which the DoRA and MiLoRA READMEs point to.
* math: trained on MetaMathQA (`meta-math/MetaMathQA`), tested on GSM8K (`openai/gsm8k`, main, test) and on
  the 5,000-problem MATH test file of MiLoRA's repo (`sufenlp/MiLoRA` `data/MATH_test.jsonl`, MetaMath's copy).
* metamathqa: PEFT's own benchmark (huggingface/peft `method_comparison/MetaMathQA`): trained on MetaMathQA with
  PEFT's template, tested on GSM8K's test split, scored with PEFT's reading (test set `gsm8k_peft`).

Every split is read into one schema, the lineage's: instruction / input / output / answer (LLM-Adapters'
files have exactly these fields; other sources name their native columns here and how the answer is derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA = ("instruction", "input", "output", "answer")
REQUIRED = ("instruction", "output", "answer")   # `input` may be missing (it is then empty)

LLM_ADAPTERS_TEST = "https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/main/dataset/{name}/test.json"
MILORA_MATH_TEST = "https://raw.githubusercontent.com/sufenlp/MiLoRA/main/data/MATH_test.jsonl"


@dataclass(frozen=True)
class Source:
    """One split: a Hub dataset id (`config`, `split`) or the URL of a JSON/JSON-lines file; the files looked
    for under --data-dir (relative paths, first found wins); native column -> schema field renames; and how
    `answer` is derived when the source has none ("metamath": after "The answer is: ", "gsm8k": after "#### ",
    "boxed": the last \\boxed{} of the solution, "whole": the whole output, for a reader that parses it itself)."""

    hub: str
    local: tuple[str, ...]
    config: str | None = None
    split: str = "train"
    rename: dict[str, str] = field(default_factory=dict)
    derive_answer: str | None = None

    @property
    def is_url(self) -> bool:
        return self.hub.startswith(("https://", "http://"))


@dataclass(frozen=True)
class Template:
    """An Alpaca-style prompt: `train` (with {instruction}; the response follows it) and `eval` (what the model
    continues at test time); the `_input` forms are used when an example has a non-empty `input`."""

    train: str
    eval: str
    train_input: str
    eval_input: str
    source: str

    def prompt(self, instruction: str, input: str = "", train: bool = True) -> str:
        if input:
            return (self.train_input if train else self.eval_input).format(instruction=instruction, input=input)
        return (self.train if train else self.eval).format(instruction=instruction)


@dataclass(frozen=True)
class TestSet:
    """A test set: its name (LLM-Adapters' folder name), the paper's column title, how answers are read
    (`answers.extract` kind) and where it comes from."""

    name: str
    title: str
    answer_kind: str
    source: Source


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    train: Source
    tests: tuple[TestSet, ...]
    template: Template

    def test(self, name: str) -> TestSet:
        found = {t.name: t for t in self.tests}
        if name not in found:
            raise ValueError(f"Task {self.name!r} has no test set {name!r}; choose from {', '.join(found)}.")
        return found[name]


# LLM-Adapters' templates, verbatim (finetune.py's generate_prompt for training, commonsense_evaluate.py's for
# generation), including the indentation their triple-quoted strings carry into the prompt.
_PREAMBLE = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
_PREAMBLE_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                   "context. Write a response that appropriately completes the request.")
_PAD = " " * 16
LLM_ADAPTERS = Template(
    train=f"{_PREAMBLE}  \n\n{_PAD}### Instruction:\n{_PAD}{{instruction}}\n{_PAD}\n{_PAD}### Response:\n{_PAD}",
    eval=f"{_PREAMBLE} \n\n{_PAD}### Instruction:\n{_PAD}{{instruction}}\n\n{_PAD}### Response:\n{_PAD}",
    train_input=(f"{_PREAMBLE_INPUT} \n\n{_PAD}### Instruction:\n{_PAD}{{instruction}}\n{_PAD}\n{_PAD}### Input:\n"
                 f"{_PAD}{{input}}\n{_PAD}\n{_PAD}### Response:\n{_PAD}"),
    eval_input=(f"{_PREAMBLE_INPUT}\n\n{_PAD}### Instruction:\n{_PAD}{{instruction}}\n\n{_PAD}### Input:\n{_PAD}"
                f"{{input}}\n\n{_PAD}### Response:\n{_PAD}"),
    source="LLM-Adapters finetune.py / commonsense_evaluate.py generate_prompt (as in DoRA's and NEAT's copies)")

# MetaMath's template as PiSSA's and MiLoRA's train.py use it (PROMPT), and their GSM8K / MATH inference
# scripts' test prompt, which adds "Let's think step by step." after "### Response:".
_METAMATH = f"{_PREAMBLE}\n\n### Instruction:\n{{instruction}}\n\n### Response:"
_METAMATH_INPUT = f"{_PREAMBLE_INPUT}\n\n### Instruction:\n{{instruction}}\n\n### Input:\n{{input}}\n\n### Response:"
METAMATH = Template(
    train=_METAMATH, eval=_METAMATH + " Let's think step by step.",
    train_input=_METAMATH_INPUT, eval_input=_METAMATH_INPUT + " Let's think step by step.",
    source="MiLoRA/PiSSA train.py PROMPT; MiLoRA inference/gsm8k_inference.py and MATH_inference.py")


def _llm_adapters_test(name: str, title: str, kind: str) -> TestSet:
    return TestSet(name, title, kind, Source(LLM_ADAPTERS_TEST.format(name=name), (f"{name}/test.json",
                                                                                  f"{name}/test.jsonl")))


COMMONSENSE = Task(
    "commonsense", "Commonsense reasoning",
    train=Source("zwhe99/commonsense_170k", ("commonsense_170k.json", "commonsense_170k/train.json",
                                             "commonsense_170k/train.jsonl")),
    tests=(
        _llm_adapters_test("boolq", "BoolQ", "true_false"),
        _llm_adapters_test("piqa", "PIQA", "solution"),
        _llm_adapters_test("social_i_qa", "SIQA", "answer"),
        _llm_adapters_test("hellaswag", "HellaSwag", "ending"),
        _llm_adapters_test("winogrande", "WinoGrande", "option"),
        _llm_adapters_test("ARC-Easy", "ARC-e", "answer"),
        _llm_adapters_test("ARC-Challenge", "ARC-c", "answer"),
        _llm_adapters_test("openbookqa", "OBQA", "answer"),
    ),
    template=LLM_ADAPTERS)

MATH = Task(
    "math", "Arithmetic reasoning",
    train=Source("meta-math/MetaMathQA", ("MetaMathQA-395K.json", "MetaMathQA/train.json", "MetaMathQA/train.jsonl"),
                 rename={"query": "instruction", "response": "output"}, derive_answer="metamath"),
    tests=(
        TestSet("gsm8k", "GSM8K", "number",
                Source("openai/gsm8k", ("gsm8k_test.jsonl", "gsm8k/test.json", "gsm8k/test.jsonl"), config="main",
                       split="test", rename={"question": "instruction", "answer": "output"}, derive_answer="gsm8k")),
        TestSet("MATH", "MATH", "boxed",
                Source(MILORA_MATH_TEST, ("MATH_test.jsonl", "MATH/test.json", "MATH/test.jsonl"),
                       derive_answer="boxed")),
    ),
    template=METAMATH)

# PEFT's MetaMathQA benchmark (method_comparison/MetaMathQA@5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40,
# default_training_params.json query_template): one template for training and testing; the training text is the
# prompt followed directly by the response (data.py tokenize_with_answer), no input field.
_PEFT_QUERY = "Question: {instruction} Think step by step.\nAnswer:"
PEFT_METAMATHQA = Template(
    train=_PEFT_QUERY, eval=_PEFT_QUERY, train_input=_PEFT_QUERY, eval_input=_PEFT_QUERY,
    source="huggingface/peft method_comparison/MetaMathQA/default_training_params.json (query_template)"
           "@cc8973120a49336993723084f5b918c5baafd512, data.py tokenize_with_answer@1b3c01ebeb6b811b45122c4a48350bf1fdbc16df")

METAMATHQA = Task(
    "metamathqa", "MetaMathQA → GSM8K (PEFT's method comparison)",
    train=Source("meta-math/MetaMathQA", ("MetaMathQA-395K.json", "MetaMathQA/train.json", "MetaMathQA/train.jsonl"),
                 rename={"query": "instruction", "response": "output"}, derive_answer="metamath"),
    tests=(TestSet("gsm8k_peft", "GSM8K (PEFT)", "peft_number",
                   Source("openai/gsm8k", ("gsm8k_test.jsonl", "gsm8k/test.json", "gsm8k/test.jsonl"), config="main",
                          split="test", rename={"question": "instruction", "answer": "output"},
                          derive_answer="whole")),),
    template=PEFT_METAMATHQA)

TASKS: dict[str, Task] = {t.name: t for t in (COMMONSENSE, MATH, METAMATHQA)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown reasoning task {name!r}; choose from {', '.join(TASKS)}.")
    return TASKS[name]
