"""Recipes of the reasoning suite (`python -m benchmarks.llm`), as data, each value with its source.

Light on purpose (no torch, no transformers): the command line validates its flags against these tables before
anything heavy is imported. A recipe fixes the loop, the method options (rank, alpha, NEAT's scale) and the
task's data and decoding settings (`data`: cutoff_len, num_beams, max_new_tokens per test set, stop_strings).

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

from dataclasses import dataclass, replace

from ..core.catalog import methods_for
from ..core.errors import SetupError
from ..core.recipe import Recipe

__all__ = ["METHODS", "RECIPES", "SUITES", "SetupError", "TASK_TESTS", "recipe_for", "smoke_recipe"]

METHODS = methods_for("causal")
# The paper's table columns, in its order (benchmarks/llm/tasks.py holds the same names; a test checks it).
TASK_TESTS: dict[str, tuple[str, ...]] = {
    "commonsense": ("boolq", "piqa", "social_i_qa", "hellaswag", "winogrande", "ARC-Easy", "ARC-Challenge",
                    "openbookqa"),
    "math": ("gsm8k", "MATH"),
}
NO_HEAD = "not used: a causal LM has no classifier head"
STEPS_WARMUP = "not used: the warm-up is a number of steps (warmup_steps)"
NO_SWEEP = "the recipe's lr only (the lineage publishes one)"
_TRAINER = {"weight_decay": "Trainer", "clip_grad": "Trainer (max_grad_norm)"}

# What every method shares on a task: data cutoff and the decoding of the lineage.
TASK_DATA: dict[str, tuple[dict, dict[str, str]]] = {
    "commonsense": ({"cutoff_len": 256, "num_beams": 4,
                     "max_new_tokens": {t: 32 for t in TASK_TESTS["commonsense"]}, "stop_strings": ()},
                    {"cutoff_len": "LLM-A README, NEAT-sh, DoRA scripts",
                     "num_beams": "LLM-A commonsense_evaluate.py (beam search, 4 beams, no sampling)",
                     "max_new_tokens": "LLM-A commonsense_evaluate.py",
                     "stop_strings": "LLM-A commonsense_evaluate.py (none: the answer is read from the whole output)"}),
    "math": ({"cutoff_len": 512, "num_beams": 1, "max_new_tokens": {"gsm8k": 1024, "MATH": 2048},
              "stop_strings": ("Instruction:", "Instruction", "Response:", "Response")},
             {"cutoff_len": "MiLoRA scripts/run_lora.sh (MAX_LEGNTH=512), PiSSA run_lora.sh; MiLoRA run_milora.sh "
                            "sets 2048 and NEAT-sh 256: one value for every method (our choice)",
              "num_beams": "MiLoRA inference scripts: greedy (vLLM temperature 0)",
              "max_new_tokens": "MiLoRA inference/gsm8k_inference.py 1024, MATH_inference.py 2048",
              "stop_strings": "MiLoRA inference scripts"}),
}


def _llm(task: str, lr: float, epochs: int, micro: int, options: dict, sources: dict[str, str]) -> Recipe:
    data, data_sources = TASK_DATA[task]
    recipe = Recipe(lr, epochs, 16, weight_decay=0.0, head_lr=None, clip_grad=1.0, warmup_steps=100,
                    micro_batch=micro, options=options, data=data)
    return replace(recipe, sources={"head_lr": NO_HEAD, "warmup": STEPS_WARMUP, "lrs": NO_SWEEP, "sweep": NO_SWEEP,
                                    **_TRAINER, **data_sources, **sources})


def _neat(task: str) -> Recipe:
    return _llm(task, 3e-4, 1, 2, {"rank": 32, "scale": 1.0}, {
        "lr": "NEAT-sh", "epochs": "NEAT-sh (num_epochs 1; the script's data_path switches Commonsense170K / "
                                   "MetaMathQA)", "batch_size": "NEAT-sh", "micro_batch": "NEAT-sh",
        "warmup_steps": "NEAT-ft", "rank": "NEAT-sh (lora_r 32)", "scale": "NEAT-layer: lora_alpha 32 / r 32"})


def _lora_family(task: str, lr: float, rank: int, alpha: float, micro: int, lr_source: str, alpha_source: str,
                 rank_source: str) -> Recipe:
    return _llm(task, lr, 3, micro, {"lora_r": rank, "lora_alpha": alpha, "lora_dropout": 0.05}, {
        "lr": lr_source, "epochs": "LLM-A README, DoRA scripts, MiLoRA run_milora.sh", "batch_size": "LLM-A, DoRA, "
        "MiLoRA", "micro_batch": "memory only", "warmup_steps": "LLM-A finetune.py, MiLoRA scripts",
        "lora_r": rank_source, "lora_alpha": alpha_source, "lora_dropout": "LLM-A finetune.py, MiLoRA scripts"})


RECIPES: dict[tuple[str, str], Recipe] = {
    ("commonsense", "neat"): _neat("commonsense"),
    ("commonsense", "lora"): _lora_family("commonsense", 3e-4, 32, 64, 4, "DoRA README (LLaMA2-7B-LoRA r 32, lr 3e-4)",
                                          "MiLoRA run_lora.sh (alpha = 2 rank, LLM-A setting)", "DoRA README"),
    ("commonsense", "dora"): _lora_family("commonsense", 2e-4, 32, 64, 16,
                                          "DoRA llama2_7B_DoRA.sh / README (r 32, lr 2e-4)",
                                          "DoRA README example (r 32, alpha 64)", "DoRA README"),
    ("commonsense", "pissa"): _lora_family("commonsense", 3e-4, 32, 32, 4, "MiLoRA README (LLM-A settings)",
                                           "MiLoRA svd_init.py / run_milora.sh (alpha = rank for pissa, milora)",
                                           "MiLoRA README (LLM-A setting, r 32)"),
    ("commonsense", "milora"): _lora_family("commonsense", 3e-4, 32, 32, 4, "MiLoRA README (LLM-A settings)",
                                            "MiLoRA svd_init.py / run_milora.sh (alpha = rank for pissa, milora)",
                                            "MiLoRA README (LLM-A setting, r 32)"),
    ("math", "neat"): _neat("math"),
    ("math", "lora"): _lora_family("math", 3e-4, 64, 128, 1, "MiLoRA run_lora.sh",
                                   "MiLoRA run_lora.sh (alpha = 2 rank)", "MiLoRA run_lora.sh / run_milora.sh (rank 64)"),
    ("math", "dora"): _lora_family("math", 3e-4, 64, 128, 1, "no MetaMathQA recipe published for DoRA in this "
                                   "lineage: LoRA's (our choice)", "as LoRA (our choice)", "as LoRA (our choice)"),
    ("math", "pissa"): _lora_family("math", 3e-4, 64, 64, 1, "MiLoRA run_milora.sh",
                                    "MiLoRA run_milora.sh (alpha = rank)", "MiLoRA run_milora.sh (rank 64)"),
    ("math", "milora"): _lora_family("math", 3e-4, 64, 64, 1, "MiLoRA run_milora.sh",
                                     "MiLoRA run_milora.sh (alpha = rank)", "MiLoRA run_milora.sh (rank 64)"),
}
# PEANuT is PEFT's NEAT: run at NEAT's recipe (our choice; no separate LLM recipe is published for it).
for _task in TASK_TESTS:
    RECIPES[_task, "peanut"] = RECIPES[_task, "neat"].with_values(
        "NEAT's recipe (our choice: PEFT's NEAT has none of its own)", lr=RECIPES[_task, "neat"].lr)

# Per-model values where a paper published one for that base model (exact Hub ids).
MODEL_OVERRIDES: dict[tuple[str, str, str], tuple[dict, str]] = {
    ("commonsense", "dora", "meta-llama/Meta-Llama-3-8B"): ({"lr": 1e-4}, "DoRA llama3_8B_DoRA.sh"),
}


def recipe_for(task: str, method: str, model: str = "") -> Recipe:
    """The recipe of `method` on `task` (with the base model's own values where a paper published them)."""
    if (task, method) not in RECIPES:
        raise ValueError(f"No recipe for method {method!r} on task {task!r}; methods: {', '.join(METHODS)}.")
    values, source = MODEL_OVERRIDES.get((task, method, model), ({}, ""))
    return RECIPES[task, method].with_values(source, **values) if values else RECIPES[task, method]


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
    # a tiny random LLaMA and generated data (benchmarks/llm/smoke.py): a pipeline check, not the paper's numbers
    "smoke": LLMSuite(("commonsense", "math"), METHODS, "smoke-tiny-llama", save_adapters=("neat", "lora"),
                      threads=1),
}

SMOKE_PRETRAIN_EPOCHS = 6  # the smoke LLaMA's pre-training on the generated prompts (our choice: enough for the format)
SMOKE = "smoke suite (our choice: speed on a tiny random model)"


def smoke_recipe(recipe: Recipe) -> Recipe:
    """The smoke suite's recipe (our choice, for a couple of CPU minutes on a 64-wide model): rank 8 with the
    recipe's alpha / rank ratio kept, 2 epochs of batch 16 (no accumulation), 4 warm-up steps, lr 5e-3; greedy and
    short generations, short sequences."""
    options = dict(recipe.options)
    if "lora_r" in options:
        options.update(lora_alpha=options["lora_alpha"] * 8 / options["lora_r"], lora_r=8)
    else:
        options.update(rank=8)
    data = {**recipe.data, "cutoff_len": 192, "num_beams": 1,
            "max_new_tokens": {t: 12 if n <= 32 else 24 for t, n in recipe.data["max_new_tokens"].items()}}
    shrunk = replace(recipe, lr=5e-3, epochs=2, batch_size=16, micro_batch=16, warmup_steps=4, options=options,
                     data=data)
    return replace(shrunk, sources={k: SMOKE for k in shrunk.names()})
