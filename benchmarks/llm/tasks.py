"""The reasoning tasks as data: where each split comes from, its columns, its prompt template, its answers.

Sources follow the lineage the NEAT paper compares against (LLM-Adapters -> DoRA / MiLoRA / PiSSA):

* commonsense: trained on Commonsense170K, LLM-Adapters' `ft-training_set/commonsense_170k.json` (Hub copy
  `zwhe99/commonsense_170k`), tested on LLM-Adapters' `dataset/<name>/test.json` files (BoolQ, PIQA, SIQA,
  HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA), which the DoRA and MiLoRA READMEs point to.
* math: trained on MetaMathQA (`meta-math/MetaMathQA`), tested on GSM8K (`openai/gsm8k`, main, test) and on
  the 5,000-problem MATH test file of MiLoRA's repo (`sufenlp/MiLoRA` `data/MATH_test.jsonl`, MetaMath's copy).
* metamathqa: PEFT's own benchmark (huggingface/peft `method_comparison/MetaMathQA`): trained on MetaMathQA with
  PEFT's template, tested on GSM8K's test split, scored with PEFT's reading (test set `gsm8k_peft`).

Every source is pinned (core.sources.Pin: a Hub repository or a GitHub repository's raw file at a commit, with where
the commit was found) and carries the rows it should hold where they were found (checked on load). Every split is
read into one schema, the lineage's: instruction / input / output / answer (LLM-Adapters' files have exactly these
fields; other sources name their native columns here and how the answer is derived).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.sources import Expected, Pin

SCHEMA = ("instruction", "input", "output", "answer")
REQUIRED = ("instruction", "output", "answer")   # `input` may be missing (it is then empty)

LLM_ADAPTERS_REPO = Pin("AGI-Edgerunners/LLM-Adapters", "ae07636f948d5536c3566267bb467661bfa4e90b",
                   "the commit that last changed the eight dataset/<name>/test.json files (git log of the repository "
                   "at 816657208af4db747803f87ba40a4c71383fed7a)", "github")
LLM_ADAPTERS_ROWS = ("rows counted in AGI-Edgerunners/LLM-Adapters dataset/<name>/test.json at "
                     "816657208af4db747803f87ba40a4c71383fed7a (unchanged since ae07636)")
MILORA_REPO = Pin("sufenlp/MiLoRA", "e5f7268442fdb02f468aa9f952c518e53eb28ce2",
             "the commit that added data/MATH_test.jsonl (git log of the repository at "
             "4740756d5d74700527d799a8d4a0c40dc9e92235)", "github")
PEFT_META = ("huggingface/peft method_comparison/MetaMathQA/results/lora--llama-3.2-3B-rank32.json @ "
             "0a179c1e8659ab4f7df0369b9b03943cfe470ff1 (meta_info)")
PEFT_META_2026 = ("huggingface/peft method_comparison/MetaMathQA/results/peanut--llama-3.2-3B-rank32-relu-depth0-s2.0.json"
                  " @ 493e7539c6201e497c19bcd22a366a7480c98264 (meta_info.dataset_info)")
METAMATHQA_PIN = Pin("meta-math/MetaMathQA", "aa4f34d3d2d3231299b5b03d9b3e5a20da45aa18",
                     f"{PEFT_META}; {PEFT_META_2026}; also main's head on its tree page")
GSM8K_TEST_ROWS = ("openai/gsm8k card dataset_info (main: train 7,473 / test 1,319); MiLoRA's data/gsm8k_test.jsonl "
                   "has 1,319 lines too")


@dataclass(frozen=True)
class Source:
    """One split: a Hub dataset (`pin`, `config`, `split`) or a JSON/JSON-lines file `path` of a GitHub repository
    (`pin` of kind "github"); the files looked for under --data-dir (relative paths, first found wins); native column
    -> schema field renames; how `answer` is derived when the source has none ("metamath": after "The answer is: ",
    "gsm8k": after "#### ", "boxed": the last \\boxed{} of the solution, "whole": the whole output, for a reader
    that parses it itself); the rows it holds where they were found
    (`rows`, with `rows_cite`; None: not checked, `rows_cite` says why)."""

    pin: Pin
    local: tuple[str, ...]
    path: str = ""
    config: str | None = None
    split: str = "train"
    rename: dict[str, str] = field(default_factory=dict)
    derive_answer: str | None = None
    rows: int | None = None
    rows_cite: str = ""

    @property
    def is_url(self) -> bool:
        return self.pin.kind == "github"

    @property
    def hub(self) -> str:
        """The Hub id, or the file's URL at the pinned commit."""
        return self.pin.url(self.path) if self.is_url else self.pin.repo

    @property
    def expected(self) -> Expected:
        return Expected({self.split: self.rows} if self.rows else {}, None, self.rows_cite)


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


def _llm_adapters_test(name: str, title: str, kind: str, rows: int | None) -> TestSet:
    return TestSet(name, title, kind, Source(
        LLM_ADAPTERS_REPO, (f"{name}/test.json", f"{name}/test.jsonl"), path=f"dataset/{name}/test.json", split="test",
        rows=rows, rows_cite=LLM_ADAPTERS_ROWS if rows else "not counted (the file was not in the copy searched)"))


COMMONSENSE = Task(
    "commonsense", "Commonsense reasoning",
    train=Source(Pin("zwhe99/commonsense_170k", None, "no full commit found (main's head was seen as 0bb8db2): "
                     "recorded at first download"),
                 ("commonsense_170k.json", "commonsense_170k/train.json", "commonsense_170k/train.jsonl"),
                 rows_cite="not checked: its exact count was not found (the Hub viewer shows 170k)"),
    tests=(
        _llm_adapters_test("boolq", "BoolQ", "true_false", 3270),
        _llm_adapters_test("piqa", "PIQA", "solution", 1838),
        _llm_adapters_test("social_i_qa", "SIQA", "answer", 1954),
        _llm_adapters_test("hellaswag", "HellaSwag", "ending", None),
        _llm_adapters_test("winogrande", "WinoGrande", "option", 1267),
        _llm_adapters_test("ARC-Easy", "ARC-e", "answer", 2376),
        _llm_adapters_test("ARC-Challenge", "ARC-c", "answer", 1172),
        _llm_adapters_test("openbookqa", "OBQA", "answer", 500),
    ),
    template=LLM_ADAPTERS)

# MetaMathQA as both math tasks train on it (MiLoRA's recipe and PEFT's benchmark read the same file)
METAMATHQA_TRAIN = Source(METAMATHQA_PIN, ("MetaMathQA-395K.json", "MetaMathQA/train.json", "MetaMathQA/train.jsonl"),
                          rename={"query": "instruction", "response": "output"}, derive_answer="metamath",
                          rows_cite="not checked: an exact count was not found (395K by its file name)")

MATH = Task(
    "math", "Arithmetic reasoning",
    train=METAMATHQA_TRAIN,
    tests=(
        TestSet("gsm8k", "GSM8K", "number",
                Source(Pin("openai/gsm8k", "e53f048856ff4f594e959d75785d2c2d37b678ee",
                           f"{PEFT_META}: the 'Convert dataset to Parquet (#3)' commit; peft's 2026 runs used "
                           "740312add88f781978c0658806c59bc2815b9866"),
                       ("gsm8k_test.jsonl", "gsm8k/test.json", "gsm8k/test.jsonl"), config="main", split="test",
                       rename={"question": "instruction", "answer": "output"}, derive_answer="gsm8k", rows=1319,
                       rows_cite=GSM8K_TEST_ROWS)),
        TestSet("MATH", "MATH", "boxed",
                Source(MILORA_REPO, ("MATH_test.jsonl", "MATH/test.json", "MATH/test.jsonl"),
                       path="data/MATH_test.jsonl", split="test", derive_answer="boxed", rows=5000,
                       rows_cite="the MATH test set's 5,000 problems (Hendrycks et al., arXiv 2103.03874; "
                                 "lighteval/MATH README); MiLoRA's file itself was not counted")),
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
    "metamathqa", "PEFT's MetaMathQA benchmark",
    train=METAMATHQA_TRAIN,
    tests=(TestSet("gsm8k_peft", "GSM8K (PEFT's reading)", "peft_number",
                   Source(Pin("openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", PEFT_META_2026),
                          ("gsm8k_test.jsonl", "gsm8k/test.json", "gsm8k/test.jsonl"), config="main", split="test",
                          rename={"question": "instruction", "answer": "output"}, derive_answer="whole", rows=1319,
                          rows_cite=GSM8K_TEST_ROWS)),),
    template=PEFT_METAMATHQA)

TASKS: dict[str, Task] = {t.name: t for t in (COMMONSENSE, MATH, METAMATHQA)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown reasoning task {name!r}; choose from {', '.join(TASKS)}.")
    return TASKS[name]
