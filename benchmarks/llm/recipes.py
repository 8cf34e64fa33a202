"""Recipes of the reasoning suite (`python -m benchmarks.llm`), as data, each value with its source.

Light on purpose (no torch, no transformers): the command line validates its flags against these tables before
anything heavy is imported. A recipe fixes the loop, the method options (rank, alpha, NEAT's scale) and the task's
data and decoding settings (`data`: targets, cutoff_len, train_on_inputs, val_set_size / eval_steps, train_rows,
dtype, decoding...).

Each published row beside ours was trained and scored by one source; the method it belongs to runs that source's
recipe, and NEAT (and PEANuT) run the recipe of the rows they are compared with (the same epochs, data, masking,
hold-out and decoding) at NEAT's own cited lr. Sources (file@commit, short names used in `sources` below):

  LA-ft     AGI-Edgerunners/LLM-Adapters finetune.py@816657208af4db747803f87ba40a4c71383fed7a (train() defaults:
            train_on_inputs=True, val_set_size 2000, eval_step 200, warmup_steps 100, lora_dropout 0.05, fp16
            weights and fp16=True, linear schedule, weight decay 0, load_best_model_at_end when val_set_size > 0;
            the hold-out: train_test_split(test_size=val_set_size, shuffle=True, seed=42))
  LA-eval   LLM-Adapters commonsense_evaluate.py@816657208af4db747803f87ba40a4c71383fed7a (num_beams 4,
            max_new_tokens 32, no sampling)
  LA-readme LLM-Adapters README.md@816657208af4db747803f87ba40a4c71383fed7a (its one printed finetune command: batch
            16, micro-batch 4, 3 epochs, lr 3e-4, cutoff 256, val_set_size 120)
  DoRA-ft   NVlabs/DoRA commonsense_reasoning/finetune.py@7e2f10abbe8efe212c8fca1d983ae1d04ef13a18 (LA-ft's defaults
            plus weight_decay 0.0)
  DoRA-sh   DoRA commonsense_reasoning/llama2_7B_DoRA.sh@7e2f10abbe8efe212c8fca1d983ae1d04ef13a18 (lr 2e-4, batch 16,
            micro-batch 16, 3 epochs, cutoff 256, val_set_size 120, eval_step 80, q,k,v,up,down; r, alpha as
            arguments), llama3_8B_DoRA.sh@7e2f10ab... (lr 1e-4)
  DoRA-rd   DoRA commonsense_reasoning/README.md@7e2f10abbe8efe212c8fca1d983ae1d04ef13a18 (tables: LoRA rows r 32 at lr
            3e-4, DoRA rows r 32 at lr 2e-4 / 1e-4; the example `sh llama_7B_Dora.sh 32 64`: r 32, alpha 64)
  MI-sh     sufenlp/MiLoRA scripts/run_lora.sh, scripts/run_milora.sh@4740756d5d74700527d799a8d4a0c40dc9e92235 (3
            epochs, rank 64, alpha 2*rank (LoRA) or rank (MiLoRA, PiSSA), lr 3e-4, linear, warmup_steps 100, weight
            decay 0, batch 16 = 1 x 8 GPUs x 2, MAX_LEGNTH 2048, dropout 0.05, q,k,v,up,down, --bf16)
  MI-train  MiLoRA train.py@4740756d5d74700527d799a8d4a0c40dc9e92235 (dataset_split default "train[:100000]": the
            scripts' --dataset_split "$data_num" names an unset variable; the prompt's tokens are masked)
  MI-inf    MiLoRA inference/gsm8k_inference.py, MATH_inference.py@4740756d5d74700527d799a8d4a0c40dc9e92235 (vLLM
            greedy, max_tokens 1024 / 2048, stop strings)
  MI-rd     MiLoRA README.md@4740756d5d74700527d799a8d4a0c40dc9e92235 (commonsense: LLM-Adapters' code and
            settings, only the initialisation changed)
  NEAT-sh   yibozhong/peanut commonsense&math/scripts/finetune.sh@086d702020b11b3e3cf8708a06c4ee4a3074d13e (lr 3e-4,
            1 epoch, batch 16, micro-batch 2, cutoff 256, lora_r 32, lora_alpha 32, train_on_inputs False,
            val_set_size 0)
  NEAT-ly   yibozhong/peanut commonsense&math/peft/src/peft/tuners/peanut.py@086d702020b11b3e3cf8708a06c4ee4a3074d13e
            (scale = lora_alpha / r; the weight network reads rows of W: our orientation "in")
  PEFT-mm   huggingface/peft method_comparison/MetaMathQA@5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40:
            default_training_params.json@cc8973120a49336993723084f5b918c5baafd512 (bf16, max_seq_length 768,
            batch 4, 5,000 steps, AdamW lr 1e-4, weight decay 0.1, cosine, grad-norm clip 1.0, max_new_tokens 300,
            max_length 800), utils.py@ad4e565c8a94081458db42cb771afed54e722d36 (WARMUP_STEP_RATIO 0.1, BucketIterator,
            BUCKET_FACTOR 20), data.py@1b3c01ebeb6b811b45122c4a48350bf1fdbc16df (CHAR_LIMIT 1300, train = all of
            MetaMathQA in stored order), run.py@505e6fd68216cf548d1ab76a42a124bd3f5c1a2b (loss on the whole
            sequence and the first padding EOS, normalised by the attended tokens; greedy decoding), experiments/
            lora/llama-3.2-3B-rank32/adapter_config.json (r 32, alpha 64, dropout 0, target_modules null: PEFT's
            q_proj, v_proj for LLaMA), experiments/lora/llama-3.2-3B-rank32-dora, experiments/peanut/
            llama-3.2-3B-rank32-relu-depth0-s2.0/adapter_config.json@50569d61935f9c93021e9a6cdb5c01d1bc4ffb28 (r 32,
            depth 0, relu, scaling 2.0, q_proj, v_proj)
  Trainer   transformers TrainingArguments defaults (max_grad_norm 1.0), which every lineage script trains with
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.catalog import methods_for
from ..core.recipe import Recipe
from .tasks import TASKS

__all__ = ["METHODS", "RECIPES", "SUITES", "TASK_TESTS", "check_recipes", "recipe_for", "smoke_recipe"]

METHODS = methods_for("causal")
# Each task's test sets, in the paper's column order (tasks.py, plain data like this module).
TASK_TESTS: dict[str, tuple[str, ...]] = {name: tuple(t.name for t in task.tests) for name, task in TASKS.items()}
NO_HEAD = "not used: a causal LM has no classifier head"
STEPS_WARMUP = "not used: the warm-up is a number of steps (warmup_steps)"
SHARE_WARMUP = "not used: the warm-up is a share of the steps (warmup)"
NO_SWEEP = "the recipe's lr only (each source publishes one)"
MEMORY = "memory only (the effective batch is the source's)"
QKVUD = ("q_proj", "k_proj", "v_proj", "up_proj", "down_proj")
SAME_AS_ROWS = "as the rows NEAT is compared with"

_COMMONSENSE_DECODING = ({"num_beams": 4, "max_new_tokens": {t: 32 for t in TASK_TESTS["commonsense"]},
                          "stop_strings": ()},
                         {"num_beams": "LA-eval (beam search, 4 beams, no sampling)", "max_new_tokens": "LA-eval",
                          "stop_strings": "LA-eval (none: the answer is read from the whole output)"})
_MATH_DECODING = ({"num_beams": 1, "max_new_tokens": {"gsm8k": 1024, "MATH": 2048},
                   "stop_strings": ("Instruction:", "Instruction", "Response:", "Response")},
                  {"num_beams": "MI-inf: greedy (vLLM temperature 0)",
                   "max_new_tokens": "MI-inf (gsm8k_inference.py 1024, MATH_inference.py 2048)",
                   "stop_strings": "MI-inf"})


def _recipe(lr: float, epochs: int, batch: int, micro: int, warmup_steps: int, options: dict, data: dict,
            sources: dict[str, str], decoding: tuple[dict, dict]) -> Recipe:
    recipe = Recipe(lr, epochs, batch, weight_decay=0.0, head_lr=None, clip_grad=1.0, warmup_steps=warmup_steps,
                    micro_batch=micro, options=options, data={**data, **decoding[0]})
    return replace(recipe, sources={"head_lr": NO_HEAD, "warmup": STEPS_WARMUP, "lrs": NO_SWEEP, "sweep": NO_SWEEP,
                                    "schedule": "LA-ft, MI-sh: linear (Trainer's default)",
                                    "clip_grad": "Trainer (max_grad_norm)", "micro_batch": MEMORY,
                                    **decoding[1], **sources})


# --- commonsense: the rows are DoRA's (LoRA, DoRA) and MiLoRA's (PiSSA, MiLoRA), both on LLM-Adapters' code ----
def _dora_commonsense(lr: float, lr_source: str, options: dict, option_sources: dict[str, str]) -> Recipe:
    """DoRA's scripts: the recipe of DoRA's README rows (LoRA's at lr 3e-4, DoRA's at 2e-4 / 1e-4)."""
    data = {"targets": QKVUD, "cutoff_len": 256, "train_on_inputs": True, "val_set_size": 120, "eval_steps": 80,
            "dtype": "fp16"}
    return _recipe(lr, 3, 16, 16, 100, options, data, {
        "lr": lr_source, "epochs": "DoRA-sh", "batch_size": "DoRA-sh", "warmup_steps": "DoRA-ft (= LA-ft)",
        "weight_decay": "DoRA-ft", "targets": "DoRA-sh", "cutoff_len": "DoRA-sh",
        "train_on_inputs": "DoRA-ft default (True), which DoRA-sh does not override",
        "val_set_size": "DoRA-sh (120 held out; DoRA-ft keeps the best checkpoint by their loss)",
        "eval_steps": "DoRA-sh (eval_step 80)", "dtype": "DoRA-ft (fp16 weights, fp16=True)", **option_sources},
        _COMMONSENSE_DECODING)


def _lora_options(rank: int, alpha: float) -> dict:
    return {"lora_r": rank, "lora_alpha": alpha, "lora_dropout": 0.05}


_DORA_LORA = _dora_commonsense(3e-4, "DoRA-rd (LoRA rows: lr 3e-4)", _lora_options(32, 64), {
    "lora_r": "DoRA-rd (r 32 rows)", "lora_alpha": "DoRA-rd (example: r 32, alpha 64)", "lora_dropout": "DoRA-ft"})
_DORA_DORA = _dora_commonsense(2e-4, "DoRA-sh / DoRA-rd (DoRA rows: lr 2e-4)", _lora_options(32, 64), {
    "lora_r": "DoRA-rd (r 32 rows)", "lora_alpha": "DoRA-rd (example: r 32, alpha 64)", "lora_dropout": "DoRA-ft"})


def _milora_commonsense(method: str) -> Recipe:
    """MiLoRA's Table 1 rows: LLM-Adapters' code and settings (MI-rd); its one printed command (LA-readme) for
    batch, epochs, lr, cutoff and the 120-example hold-out, LA-ft's defaults for the rest."""
    data = {"targets": QKVUD, "cutoff_len": 256, "train_on_inputs": True, "val_set_size": 120, "eval_steps": 200,
            "dtype": "fp16"}
    return _recipe(3e-4, 3, 16, 4, 100, _lora_options(32, 32), data, {
        "lr": "MI-rd -> LA-readme", "epochs": "MI-rd -> LA-readme", "batch_size": "MI-rd -> LA-readme",
        "warmup_steps": "LA-ft", "weight_decay": "LA-ft", "targets": "MI-sh (q,k,v,up,down: LLM-Adapters' LLaMA set)",
        "cutoff_len": "MI-rd -> LA-readme", "train_on_inputs": "LA-ft default (True)",
        "val_set_size": "MI-rd -> LA-readme (120; LA-ft keeps the best checkpoint)",
        "eval_steps": "LA-ft default (eval_step 200; LA-readme does not set it)", "dtype": "LA-ft (fp16)",
        "lora_r": f"MI-rd (Table 1: {method} r 32)",
        "lora_alpha": "MI-sh (alpha = rank for milora and pissa, as svd_init.py writes them)",
        "lora_dropout": "LA-ft"}, _COMMONSENSE_DECODING)


# --- math: the rows are MiLoRA's Table 2 (LoRA, PiSSA, MiLoRA) ------------------------------------------------
def _milora_math(alpha_per_rank: int, alpha_source: str) -> Recipe:
    data = {"targets": QKVUD, "cutoff_len": 2048, "train_on_inputs": False, "train_rows": 100_000, "dtype": "fp32+bf16"}
    return _recipe(3e-4, 3, 16, 1, 100, _lora_options(64, 64 * alpha_per_rank), data, {
        "lr": "MI-sh", "epochs": "MI-sh", "batch_size": "MI-sh (1 x 8 GPUs x 2)", "warmup_steps": "MI-sh",
        "weight_decay": "MI-sh", "targets": "MI-sh", "cutoff_len": "MI-sh (MAX_LEGNTH=2048)",
        "train_on_inputs": "MI-train (the prompt is masked)", "train_rows": "MI-train (dataset_split default train[:100000]; the scripts pass an unset $data_num, whose "
        "effect is not verified: we read it as the default)",
        "dtype": "MI-sh (--bf16 True --tf32 True: bf16 autocast; MI-train loads the model without torch_dtype)", "lora_r": "MI-sh (rank 64)", "lora_alpha": alpha_source,
        "lora_dropout": "MI-sh"}, _MATH_DECODING)


# --- NEAT and PEANuT: the recipe of the rows they sit beside, at NEAT's own lr ----------------------------------
def _neat_like(rows: Recipe, note: str) -> Recipe:
    """`rows`' recipe (epochs, data, masking, hold-out, decoding, targets) with NEAT's options and lr."""
    options = {"rank": 32, "scale": 1.0}
    recipe = replace(rows, lr=3e-4, micro_batch=rows.micro_batch, options=options)
    sources = {k: f"{SAME_AS_ROWS} ({note}): {v}" for k, v in rows.sources.items() if k not in rows.options}
    return replace(recipe, sources={**sources, "lr": "NEAT-sh (lr 3e-4)", "rank": "NEAT-sh (lora_r 32)",
                                    "scale": "NEAT-ly (lora_alpha 32 / r 32 = 1)"})


# --- PEFT's MetaMathQA benchmark: one shared recipe, each method its experiment's adapter config ---------------
def _peft_mm(options: dict, option_sources: dict[str, str]) -> Recipe:
    data = {"targets": ("q_proj", "v_proj"), "cutoff_len": 768, "train_on_inputs": True, "char_limit": 1300,
            "train_rows": 20_000, "order": "length_buckets", "bucket_rows": 80, "labels": "peft", "dtype": "bf16",
            "num_beams": 1, "max_new_tokens": {"gsm8k_peft": 300}, "max_length": 800, "stop_strings": (),
            "score_with_prompt": True, "eval_batch_size": 50}
    recipe = Recipe(1e-4, 1, 4, weight_decay=0.1, head_lr=None, clip_grad=1.0, warmup=0.1, schedule="cosine",
                    micro_batch=4, options=options, data=data)
    return replace(recipe, sources={
        "lr": "PEFT-mm (optimizer_kwargs lr 1e-4)", "epochs": "PEFT-mm: 5,000 steps of 4 = the first 20,000 rows "
        "once (train_rows)", "batch_size": "PEFT-mm (batch_size 4, no accumulation)",
        "weight_decay": "PEFT-mm (weight_decay 0.1)", "head_lr": NO_HEAD, "clip_grad": "PEFT-mm (grad_norm_clip 1.0)",
        "warmup": "PEFT-mm (WARMUP_STEP_RATIO 0.1)", "warmup_steps": SHARE_WARMUP, "schedule": "PEFT-mm (cosine)",
        "micro_batch": "PEFT-mm (batch_size 4)", "lrs": NO_SWEEP, "sweep": NO_SWEEP,
        "targets": "PEFT-mm (q_proj, v_proj)", "cutoff_len": "PEFT-mm (max_seq_length 768)",
        "train_on_inputs": "PEFT-mm (labels = input_ids: no prompt masking)",
        "char_limit": "PEFT-mm (CHAR_LIMIT: len(query + ' ' + response) <= 1300)",
        "train_rows": "PEFT-mm (max_steps 5000 x batch_size 4 rows, in stored order)",
        "order": "PEFT-mm (BucketIterator: rows in stored order, each bucket sorted longest first)",
        "bucket_rows": "PEFT-mm (batch_size 4 x BUCKET_FACTOR 20)",
        "labels": "PEFT-mm (the first padding EOS labelled; loss over the attended tokens)",
        "dtype": "PEFT-mm (dtype bfloat16)", "num_beams": "PEFT-mm (greedy)",
        "max_new_tokens": "PEFT-mm (generation_kwargs max_new_tokens 300)",
        "max_length": "PEFT-mm (generation_kwargs max_length 800, per batch: min(prompt + 300, 800))",
        "stop_strings": "PEFT-mm (none)", "score_with_prompt": "PEFT-mm (the decoded output with its prompt is read)",
        "eval_batch_size": "PEFT-mm (batch_size_eval 50)",
        **option_sources})


_PEFT_PEANUT_OPTIONS = ({"rank": 32, "depth": 2, "activation": "relu", "scale": 2.0},
                        {"rank": "PEFT-mm peanut (r 32)", "depth": "PEFT-mm peanut (depth 0 pairs = our depth 2)",
                         "activation": "PEFT-mm peanut (relu)", "scale": "PEFT-mm peanut (scaling 2.0)"})

RECIPES: dict[tuple[str, str], Recipe] = {
    ("commonsense", "lora"): _DORA_LORA,
    ("commonsense", "dora"): _DORA_DORA,
    ("commonsense", "pissa"): _milora_commonsense("pissa"),
    ("commonsense", "milora"): _milora_commonsense("milora"),
    ("commonsense", "neat"): _neat_like(_DORA_LORA, "DoRA's LoRA and DoRA rows"),
    ("math", "lora"): _milora_math(2, "MI-sh (alpha = 2 rank)"),
    ("math", "dora"): _milora_math(2, "as LoRA: no MetaMathQA DoRA recipe in this lineage (our choice)").with_values(
        "as LoRA: no MetaMathQA DoRA recipe in this lineage (our choice)", lr=3e-4),
    ("math", "pissa"): _milora_math(1, "MI-sh (alpha = rank)"),
    ("math", "milora"): _milora_math(1, "MI-sh (alpha = rank)"),
    ("math", "neat"): _neat_like(_milora_math(2, ""), "MiLoRA's Table 2 rows"),
    ("metamathqa", "lora"): _peft_mm({"lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.0},
                                     {"lora_r": "PEFT-mm lora (r 32)", "lora_alpha": "PEFT-mm lora (lora_alpha 64)",
                                      "lora_dropout": "PEFT-mm lora (lora_dropout 0.0)"}),
    ("metamathqa", "dora"): _peft_mm({"lora_r": 32, "lora_alpha": 64, "lora_dropout": 0.0},
                                     {k: "PEFT-mm lora/llama-3.2-3B-rank32-dora (LoRA's, use_dora)"
                                      for k in ("lora_r", "lora_alpha", "lora_dropout")}),
    ("metamathqa", "peanut"): _peft_mm(*_PEFT_PEANUT_OPTIONS),
    ("metamathqa", "neat"): _peft_mm({**_PEFT_PEANUT_OPTIONS[0]}, {
        **_PEFT_PEANUT_OPTIONS[1], "scale": "PEFT-mm peanut (scaling 2.0): NEAT beside PEANuT at its config"}),
}
# PEANuT is PEFT's NEAT: on the lineage tasks it runs NEAT's recipe (our choice: PEFT's NEAT has no recipe there);
# it reads W0 = W^T (orientation "out", as PEFT defines it) where NEAT's LLM preset reads W (orientation "in").
for _task in ("commonsense", "math"):
    RECIPES[_task, "peanut"] = RECIPES[_task, "neat"].with_values(
        "NEAT's recipe (our choice: PEFT's NEAT has none of its own)", lr=RECIPES[_task, "neat"].lr)
ORIENTATIONS = {"neat": "in (NEAT-ly: rows of W, the paper's LLM code)",
                "peanut": "out (PEFT's PEANuT: rows of W^T; PEFT has no other)"}

# Per-model values where a paper published one for that base model (exact Hub ids).
MODEL_OVERRIDES: dict[tuple[str, str, str], tuple[dict, str]] = {
    ("commonsense", "dora", "meta-llama/Meta-Llama-3-8B"): ({"lr": 1e-4}, "DoRA-sh (llama3_8B_DoRA.sh: lr 1e-4)"),
}


def check_recipes(task: str, methods: list[str]) -> None:
    """A ValueError naming the methods without a recipe on `task` and those with one."""
    missing = [m for m in methods if (task, m) not in RECIPES]
    if missing:
        have = sorted(m for t, m in RECIPES if t == task)
        raise ValueError(f"No recipe for {', '.join(missing)} on task {task}: its source publishes none; methods "
                         f"with one: {', '.join(have)}.")


def recipe_for(task: str, method: str, model: str = "") -> Recipe:
    """The recipe of `method` on `task` (with the base model's own values where a paper published them)."""
    check_recipes(task, [method])
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
    seeds: tuple[int, ...] = (0, 1, 2)   # our choice: mean and std over three seeds (the sources report one run)


SUITES: dict[str, LLMSuite] = {
    "paper": LLMSuite(("commonsense",), METHODS, "meta-llama/Llama-2-7b-hf", save_adapters=METHODS),
    # PEFT's own leaderboard (method_comparison/MetaMathQA): NEAT beside the methods PEFT ran there
    "peft-metamathqa": LLMSuite(("metamathqa",), ("neat", "lora", "dora", "peanut"), "meta-llama/Llama-3.2-3B",
                                save_adapters=("neat",)),
    # a tiny random LLaMA and generated data (benchmarks/llm/smoke.py): a pipeline check, not the paper's numbers
    "smoke": LLMSuite(("commonsense", "math", "metamathqa"), METHODS, "smoke-tiny-llama",
                      save_adapters=("neat", "lora"), threads=1, seeds=(0,)),
}

# A run's precision: recipe data "dtype" -> (base weights, Accelerate's autocast). One per run: Accelerate fixes
# autocast per process. "bf16" runs as PEFT's benchmark does (bf16 weights, no autocast; adapters fp32).
PRECISIONS = {"fp16": ("float16", "fp16"), "bf16": ("bfloat16", "no"), "fp32+bf16": ("float32", "bf16"),
              "fp32": ("float32", "no")}

SMOKE_PRETRAIN_EPOCHS = 6  # the smoke LLaMA's pre-training on the generated prompts (our choice: enough for the format)
SMOKE = "smoke suite (our choice: speed on a tiny random model)"


def smoke_recipe(recipe: Recipe) -> Recipe:
    """The smoke suite's recipe (our choice, for a couple of CPU minutes on a 64-wide model): rank 8 with the
    recipe's alpha / rank ratio kept, 2 epochs of batch 16 (no accumulation), 4 warm-up steps, lr 5e-3; greedy and
    short generations, short sequences, a 16-example hold-out checked every 2 steps where the recipe holds one out,
    at most 48 training rows where the recipe slices them. Every other data setting (masking, ordering, labels,
    scoring) is the recipe's, so each path runs."""
    options = dict(recipe.options)
    if "lora_r" in options:
        options.update(lora_alpha=options["lora_alpha"] * 8 / options["lora_r"], lora_r=8)
    else:
        options.update(rank=8)
    data = {**recipe.data, "cutoff_len": 192, "num_beams": 1, "dtype": "fp32",
            "max_new_tokens": {t: 12 if n <= 32 else 24 for t, n in recipe.data["max_new_tokens"].items()}}
    if data.get("val_set_size"):
        data.update(val_set_size=16, eval_steps=2)
    if data.get("train_rows"):
        data.update(train_rows=48, bucket_rows=8)
    if data.get("max_length"):
        data.update(max_length=192 + 24)
    shrunk = replace(recipe, lr=5e-3, epochs=2, batch_size=16, micro_batch=16, warmup_steps=4, warmup=0.0,
                     options=options, data=data)
    return replace(shrunk, sources={k: SMOKE for k in shrunk.names()})
