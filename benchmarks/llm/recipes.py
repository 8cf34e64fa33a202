"""Recipes of the reasoning suite (`python -m benchmarks.llm`), as data, each value with its source.

Light on purpose (no torch, no transformers): the command line validates its flags against these tables
before anything heavy is imported.

Sources (short names used in `sources` below):
  NEAT-sh     github yibozhong/peanut, commonsense&math/scripts/finetune.sh (the NEAT authors' LLM script)
  NEAT-ft     github yibozhong/peanut, commonsense&math/finetune.py (warmup_steps=100, linear decay, AdamW)
  NEAT-layer  github yibozhong/peanut, commonsense&math/peft/src/peft/tuners/peanut.py (scale = lora_alpha / r;
              its forward applies no dropout)
  LLM-A       github AGI-Edgerunners/LLM-Adapters, README.md (batch 16, 3 epochs, lr 3e-4, cutoff 256) and
              finetune.py (warmup_steps=100, lora_dropout=0.05), commonsense_evaluate.py (num_beams=4,
              max_new_tokens=32)
  DoRA        github NVlabs/DoRA, commonsense_reasoning/README.md (tables), llama2_7B_DoRA.sh, llama3_8B_DoRA.sh
  MiLoRA      github sufenlp/MiLoRA, README.md (commonsense: LLM-Adapters' code and settings, only the
              initialisation changed; Tables 1-2 as images), scripts/run_lora.sh, scripts/run_milora.sh,
              svd_init.py, inference/{gsm8k,MATH}_inference.py
  PiSSA       github GraphPKU/PiSSA, scripts/metamath_llama2_7b/run_lora.sh (model_max_length 512)
  Trainer     transformers TrainingArguments defaults (max_grad_norm 1.0, weight_decay 0), which every lineage
              script trains with
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


class SetupError(RuntimeError):
    """The run cannot be set up as asked (a model type without a preset, targets it lacks, a batch that does not
    divide); the command line prints it as one line."""


METHODS = ("neat", "lora", "dora", "pissa", "milora", "peanut")
DESCRIPTIONS = {
    "neat": "NEAT (ours): neat_text preset paper_llm (q, k, v, up, down; orientation 'in')",
    "lora": "LoRA (PEFT)", "dora": "DoRA (PEFT)", "pissa": "PiSSA (PEFT, init_lora_weights='pissa')",
    "milora": "MiLoRA (PEFT LoRA initialised from the minor singular components)",
    "peanut": "PEANuT (PEFT's NEAT; orientation 'out', the only one PEFT has)",
}
# The paper's table columns, in its order (neat_text.reasoning.tasks holds the same names; a test checks it).
TASK_TESTS: dict[str, tuple[str, ...]] = {
    "commonsense": ("boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy", "ARC-Challenge",
                    "openbookqa"),
    "math": ("gsm8k", "MATH"),
}


@dataclass(frozen=True)
class TaskSetting:
    """What every method shares on a task: data cutoff, targets and the decoding of the lineage."""

    cutoff_len: int
    num_beams: int
    max_new_tokens: dict[str, int]
    stop_strings: tuple[str, ...] = ()
    targets: tuple[str, ...] | None = None  # None: the model type's paper_llm preset (q, k, v, up, down for LLaMA)
    sources: dict[str, str] = field(default_factory=dict)


TASK_SETTINGS: dict[str, TaskSetting] = {
    "commonsense": TaskSetting(
        cutoff_len=256, num_beams=4, max_new_tokens={t: 32 for t in TASK_TESTS["commonsense"]},
        sources={"cutoff_len": "LLM-A README, NEAT-sh, DoRA scripts", "targets": "NEAT-sh, DoRA scripts, MiLoRA",
                 "num_beams": "LLM-A commonsense_evaluate.py (beam search, 4 beams, no sampling)",
                 "max_new_tokens": "LLM-A commonsense_evaluate.py"}),
    "math": TaskSetting(
        cutoff_len=512, num_beams=1, max_new_tokens={"gsm8k": 1024, "MATH": 2048},
        stop_strings=("Instruction:", "Instruction", "Response:", "Response"),
        sources={"cutoff_len": "MiLoRA scripts/run_lora.sh (MAX_LEGNTH=512), PiSSA run_lora.sh; MiLoRA "
                               "run_milora.sh sets 2048 and NEAT-sh 256: one value for every method (our choice)",
                 "targets": "MiLoRA scripts (q,k,v,up,down), NEAT-sh",
                 "num_beams": "MiLoRA inference scripts: greedy (vLLM temperature 0)",
                 "max_new_tokens": "MiLoRA inference/gsm8k_inference.py 1024, MATH_inference.py 2048",
                 "stop_strings": "MiLoRA inference scripts"}),
}


@dataclass(frozen=True)
class LLMRecipe:
    """One method on one task. batch_size is the effective batch (all processes and accumulation steps);
    micro_batch_size is per process and step (memory only). LoRA-family methods scale by alpha / rank; NEAT
    and PEANuT by `scale`."""

    lr: float
    epochs: int
    batch_size: int
    micro_batch_size: int
    warmup_steps: int
    rank: int
    alpha: float | None = None
    scale: float | None = None
    dropout: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    sources: dict[str, str] = field(default_factory=dict)


_TRAINER = {"weight_decay": "Trainer", "max_grad_norm": "Trainer"}


def _neat() -> LLMRecipe:
    return LLMRecipe(3e-4, 1, 16, 2, 100, rank=32, scale=1.0, sources={
        "lr": "NEAT-sh", "epochs": "NEAT-sh (num_epochs 1; the script's data_path switches Commonsense170K / MetaMathQA)", "batch_size": "NEAT-sh", "micro_batch_size": "NEAT-sh",
        "warmup_steps": "NEAT-ft", "rank": "NEAT-sh (lora_r 32)", "scale": "NEAT-layer: lora_alpha 32 / r 32",
        "dropout": "NEAT-layer (none in the forward)", **_TRAINER})


def _lora_family(lr: float, rank: int, alpha: float, micro: int, lr_source: str, alpha_source: str,
                 rank_source: str) -> LLMRecipe:
    return LLMRecipe(lr, 3, 16, micro, 100, rank=rank, alpha=alpha, dropout=0.05, sources={
        "lr": lr_source, "epochs": "LLM-A README, DoRA scripts, MiLoRA run_milora.sh", "batch_size": "LLM-A, DoRA, "
        "MiLoRA", "micro_batch_size": "memory only", "warmup_steps": "LLM-A finetune.py, MiLoRA scripts",
        "rank": rank_source, "alpha": alpha_source, "dropout": "LLM-A finetune.py, MiLoRA scripts", **_TRAINER})


RECIPES: dict[tuple[str, str], LLMRecipe] = {
    ("commonsense", "neat"): _neat(),
    ("commonsense", "lora"): _lora_family(3e-4, 32, 64, 4, "DoRA README (LLaMA2-7B-LoRA r 32, lr 3e-4)",
                                          "MiLoRA run_lora.sh (alpha = 2 rank, LLM-A setting)", "DoRA README"),
    ("commonsense", "dora"): _lora_family(2e-4, 32, 64, 16, "DoRA llama2_7B_DoRA.sh / README (r 32, lr 2e-4)",
                                          "DoRA README example (r 32, alpha 64)", "DoRA README"),
    ("commonsense", "pissa"): _lora_family(3e-4, 32, 32, 4, "MiLoRA README (LLM-A settings)",
                                           "MiLoRA svd_init.py / run_milora.sh (alpha = rank for pissa, milora)",
                                           "MiLoRA README (LLM-A setting, r 32)"),
    ("commonsense", "milora"): _lora_family(3e-4, 32, 32, 4, "MiLoRA README (LLM-A settings)",
                                            "MiLoRA svd_init.py / run_milora.sh (alpha = rank for pissa, milora)",
                                            "MiLoRA README (LLM-A setting, r 32)"),
    ("math", "neat"): _neat(),
    ("math", "lora"): _lora_family(3e-4, 64, 128, 1, "MiLoRA run_lora.sh", "MiLoRA run_lora.sh (alpha = 2 rank)",
                                   "MiLoRA run_lora.sh / run_milora.sh (rank 64)"),
    ("math", "dora"): _lora_family(3e-4, 64, 128, 1, "no MetaMathQA recipe published for DoRA in this lineage: "
                                   "LoRA's (our choice)", "as LoRA (our choice)", "as LoRA (our choice)"),
    ("math", "pissa"): _lora_family(3e-4, 64, 64, 1, "MiLoRA run_milora.sh", "MiLoRA run_milora.sh (alpha = rank)",
                                    "MiLoRA run_milora.sh (rank 64)"),
    ("math", "milora"): _lora_family(3e-4, 64, 64, 1, "MiLoRA run_milora.sh", "MiLoRA run_milora.sh (alpha = rank)",
                                     "MiLoRA run_milora.sh (rank 64)"),
}
# PEANuT is PEFT's NEAT: run at NEAT's recipe (our choice; no separate LLM recipe is published for it).
for _task in TASK_TESTS:
    RECIPES[_task, "peanut"] = replace(RECIPES[_task, "neat"], sources={
        **RECIPES[_task, "neat"].sources, "all": "NEAT's recipe (our choice: PEFT's NEAT has none of its own)"})

# Per-model values where a paper published one for that base model (exact Hub ids).
MODEL_OVERRIDES: dict[tuple[str, str, str], dict] = {
    ("commonsense", "dora", "meta-llama/Meta-Llama-3-8B"): {"lr": 1e-4},   # DoRA llama3_8B_DoRA.sh
}


def recipe_for(task: str, method: str, model: str = "") -> LLMRecipe:
    if (task, method) not in RECIPES:
        raise ValueError(f"No recipe for method {method!r} on task {task!r}; methods: {', '.join(METHODS)}.")
    return replace(RECIPES[task, method], **MODEL_OVERRIDES.get((task, method, model), {}))


@dataclass(frozen=True)
class Published:
    """Accuracies (%) a paper reports for one method, per test set, and where."""

    scores: dict[str, float]
    source: str


def _row(task: str, values: tuple[float, ...], source: str) -> Published:
    return Published(dict(zip(TASK_TESTS[task], values, strict=True)), source)


_MILORA_T1 = "MiLoRA paper Table 1 (README image, github sufenlp/MiLoRA)"
_DORA = "DoRA README (github NVlabs/DoRA commonsense_reasoning), r 32"
# (task, base model) -> method -> published row. NEAT's own LLM tables could not be retrieved here, so no NEAT
# row is listed rather than one typed in from memory.
PUBLISHED: dict[tuple[str, str], dict[str, Published]] = {
    ("commonsense", "meta-llama/Llama-2-7b-hf"): {
        "lora": _row("commonsense", (69.8, 79.9, 79.5, 83.6, 82.6, 79.8, 64.7, 81.0), f"{_DORA}; {_MILORA_T1}"),
        "dora": _row("commonsense", (71.8, 83.7, 76.0, 89.1, 82.6, 83.7, 68.2, 82.4), _DORA),
        "pissa": _row("commonsense", (67.6, 78.1, 78.4, 76.6, 78.0, 75.8, 60.2, 75.6), _MILORA_T1),
        "milora": _row("commonsense", (67.6, 83.8, 80.1, 88.2, 82.0, 82.8, 68.8, 80.6), _MILORA_T1),
    },
    ("commonsense", "meta-llama/Meta-Llama-3-8B"): {
        "lora": _row("commonsense", (70.8, 85.2, 79.9, 91.7, 84.3, 84.2, 71.2, 79.0), f"{_DORA}; {_MILORA_T1}"),
        "dora": _row("commonsense", (74.6, 89.3, 79.9, 95.5, 85.6, 90.5, 80.4, 85.8), _DORA),
        "pissa": _row("commonsense", (67.1, 81.1, 77.2, 83.6, 78.9, 77.7, 63.2, 74.6), _MILORA_T1),
        "milora": _row("commonsense", (68.8, 86.7, 77.2, 92.9, 85.6, 86.8, 75.5, 81.8), _MILORA_T1),
    },
    ("math", "meta-llama/Llama-2-7b-hf"): {
        "lora": _row("math", (60.6, 16.9), "MiLoRA paper Table 2 (README image)"),
        "pissa": _row("math", (58.2, 15.8), "MiLoRA paper Table 2 (README image)"),
        "milora": _row("math", (63.5, 17.8), "MiLoRA paper Table 2 (README image)"),
    },
}


@dataclass(frozen=True)
class LLMSuite:
    """What `python -m benchmarks.llm --suite NAME` runs by default."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    model: str
    save_adapters: tuple[str, ...] = ()
    threads: int | None = None


SUITES: dict[str, LLMSuite] = {
    "paper": LLMSuite(("commonsense",), METHODS, "meta-llama/Llama-2-7b-hf", save_adapters=METHODS),
    # a tiny random LLaMA and generated data (benchmarks.llm_smoke): a pipeline check, not the paper's numbers
    "smoke": LLMSuite(("commonsense", "math"), METHODS, "smoke-tiny-llama", save_adapters=("neat", "lora"),
                      threads=1),
}


SMOKE_PRETRAIN_EPOCHS = 6  # the smoke LLaMA's pre-training on the generated prompts (our choice: enough for the format)


def smoke_recipe(recipe: LLMRecipe) -> LLMRecipe:
    """The smoke suite's recipe (our choice, for a couple of CPU minutes on a 64-wide model): rank 8 with the
    recipe's alpha / rank ratio kept, 2 epochs of batch 16 (no accumulation), 4 warm-up steps, lr 5e-3."""
    alpha = None if recipe.alpha is None else recipe.alpha * 8 / recipe.rank
    return replace(recipe, rank=8, alpha=alpha, lr=5e-3, epochs=2, batch_size=16, micro_batch_size=16,
                   warmup_steps=4, sources={"all": "smoke suite (our choice: speed on a tiny random model)"})


def smoke_setting(setting: TaskSetting) -> TaskSetting:
    """Greedy and short generations, short sequences (our choice: speed)."""
    return replace(setting, cutoff_len=192, num_beams=1,
                   max_new_tokens={t: 12 if n <= 32 else 24 for t, n in setting.max_new_tokens.items()},
                   sources={"all": "smoke suite (our choice: speed)"})
