"""Training recipes and suites, as data. Every value can be overridden from the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from neat_vision.data import PAPER_DATASETS


@dataclass(frozen=True)
class Recipe:
    """head_lr / lr (backbone: adapters, or all weights for `full`) / weight decay, and the loop's shape.
    batch_size is the effective batch: grad_accum micro-batches of batch_size // grad_accum images."""

    head_lr: float
    lr: float
    weight_decay: float
    epochs: int = 10
    batch_size: int = 64
    grad_accum: int = 1
    crop_scale: tuple[float, float] = (0.08, 1.0)


# The paper's per-dataset values (head lr / backbone lr / weight decay), 10 epochs, batch 64.
# DTD has no published value: it gets OxfordPets' recipe, the closest dataset in size (~3.7k training
# images) and class count (47 vs 37), whose strong weight decay suits a small set trained 10 epochs.
RECIPES: dict[str, Recipe] = {
    "cars": Recipe(1e-2, 1e-2, 4e-5),
    "cifar10": Recipe(5e-3, 5e-3, 9e-5),
    "cifar100": Recipe(5e-3, 5e-3, 1e-4),
    "eurosat": Recipe(5e-3, 5e-3, 3e-4),
    "fgvc": Recipe(1e-2, 1e-2, 7e-5),
    "pets": Recipe(5e-3, 5e-3, 8e-4),
    "resisc45": Recipe(1e-2, 5e-3, 3e-4),
    "dtd": Recipe(5e-3, 5e-3, 8e-4),
    # smoke suite: digits are not flip-invariant and a tight crop would cut strokes off
    "digits59": Recipe(1e-2, 1e-2, 1e-4, epochs=10, batch_size=32, crop_scale=(0.75, 1.0)),
    "digits04": Recipe(1e-3, 1e-3, 5e-2, epochs=30, batch_size=32, crop_scale=(0.75, 1.0)),
}

# Backbone learning rates per method where the adapter recipe above would diverge (all weights training).
METHOD_LR: dict[str, dict[str, float]] = {
    "full": {"paper": 5e-5, "smoke": 5e-4},
}


@dataclass(frozen=True)
class Suite:
    """What `python -m benchmarks.vtab --suite NAME` runs by default. The smoke model is too small for
    intra-op parallelism to pay, and one thread per process stays fast when the cores are shared."""

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    model: str
    model_args: dict = field(default_factory=dict)
    workers: int = min(8, os.cpu_count() or 1)   # DataLoader workers per process: decode + augment
    threads: int | None = None    # torch CPU threads (None: torch's default)
    save_adapters: tuple[str, ...] = ()


SUITES: dict[str, Suite] = {
    "paper": Suite(PAPER_DATASETS, ("neat", "lora", "dora", "fourierft", "peanut", "vera", "head", "full"),
                   "vit_base_patch16_224.orig_in21k"),
    "smoke": Suite(("digits59",), ("neat", "lora", "head", "full"), "vit_tiny_patch16_224",
                   model_args={"img_size": 16, "patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3},
                   workers=0, threads=1, save_adapters=("neat", "lora")),
}


def recipe_for(dataset: str) -> Recipe:
    if dataset not in RECIPES:
        raise ValueError(f"No recipe for dataset {dataset!r}; recipes exist for {', '.join(RECIPES)}.")
    return RECIPES[dataset]


# --- GLUE (RoBERTa) -------------------------------------------------------------------------------------
GLUE_WARMUP = 0.06  # linear warm-up fraction of every GLUE run; AdamW without weight decay


@dataclass(frozen=True)
class GlueSetting:
    """One method on one GLUE task: its recipe and the MethodOptions fields it sets (NEAT's scale, ranks)."""

    recipe: Recipe
    options: dict = field(default_factory=dict)


def _neat(scale: float, head_lr: float, lr: float, epochs: int, batch_size: int) -> GlueSetting:
    return GlueSetting(Recipe(head_lr, lr, 0.0, epochs, batch_size), {"scale": scale})


# The paper's NEAT-S / NEAT-L settings per task: scale / head lr / backbone lr / epochs / batch.
GLUE_NEAT: dict[str, dict[str, GlueSetting]] = {
    "cola": {"neat-s": _neat(0.1, 1e-3, 5e-3, 100, 64), "neat-l": _neat(0.1, 1e-3, 1e-3, 100, 64)},
    "mrpc": {"neat-s": _neat(0.01, 5e-3, 5e-3, 100, 64), "neat-l": _neat(0.01, 5e-3, 5e-3, 100, 64)},
    "qnli": {"neat-s": _neat(0.1, 1e-3, 1e-3, 40, 32), "neat-l": _neat(0.01, 1e-3, 1e-3, 40, 32)},
    "mnli": {"neat-s": _neat(0.01, 5e-3, 5e-3, 20, 32), "neat-l": _neat(0.01, 5e-3, 5e-3, 20, 32)},
    "qqp": {"neat-s": _neat(1.0, 1e-3, 1e-3, 20, 64), "neat-l": _neat(0.01, 5e-3, 5e-3, 20, 64)},
    "rte": {"neat-s": _neat(1.0, 1e-3, 1e-3, 100, 32), "neat-l": _neat(0.01, 5e-3, 5e-3, 100, 32)},
    "sst2": {"neat-s": _neat(0.01, 5e-3, 5e-3, 40, 32), "neat-l": _neat(0.01, 5e-3, 5e-3, 40, 32)},
    "stsb": {"neat-s": _neat(0.1, 1e-3, 5e-3, 100, 64), "neat-l": _neat(0.1, 5e-3, 5e-3, 100, 64)},
}

# LoRA and DoRA: the LoRA paper's RoBERTa-base GLUE settings (Hu et al. 2021, Table 9): r = alpha = 8 on
# query and value, batch 16, one learning rate for adapters and head, (lr, epochs) per task.
GLUE_LORA: dict[str, tuple[float, int]] = {
    "mnli": (5e-4, 30), "sst2": (5e-4, 60), "mrpc": (4e-4, 30), "cola": (4e-4, 80),
    "qnli": (4e-4, 25), "qqp": (5e-4, 25), "rte": (5e-4, 80), "stsb": (4e-4, 40),
}
GLUE_LORA_BATCH = 16

# The other methods: NEAT-L's row with these recipe fields replaced. PEANuT is PEFT's NEAT, run as NEAT-L
# (rank 8, NEAT-L's scale). FourierFT: n_frequency 1000 and scaling 150, the RoBERTa GLUE values PEFT's
# FourierFTConfig documents, and 5e-2 for the spectral coefficients (the FourierFT paper's RoBERTa-base order
# of magnitude). BitFit: 1e-3, the top of the BitFit paper's search. Full fine-tuning: RoBERTa's GLUE recipe
# (lr 2e-5 for all weights, batch 32, 10 epochs).
GLUE_BASELINES: dict[str, dict] = {
    "peanut": {}, "fourierft": {"lr": 5e-2}, "bitfit": {"lr": 1e-3}, "head": {},
    "full": {"head_lr": 2e-5, "lr": 2e-5, "epochs": 10, "batch_size": 32},
}
GLUE_OPTIONS: dict[str, dict] = {
    "neat-s": {"rank": 1}, "neat-l": {"rank": 8}, "peanut": {"rank": 8},
    "lora": {"lora_r": 8, "lora_alpha": 8}, "dora": {"lora_r": 8, "lora_alpha": 8},
    "fourierft": {"n_frequency": 1000, "fourier_scaling": 150.0},
}


def glue_setting(method: str, task: str) -> GlueSetting:
    """The recipe and method options of `method` on GLUE `task` (RoBERTa-base settings)."""
    if task not in GLUE_NEAT:
        raise ValueError(f"No GLUE recipe for task {task!r}; recipes exist for {', '.join(GLUE_NEAT)}.")
    neat_l = GLUE_NEAT[task]["neat-l"]
    if method in GLUE_NEAT[task]:
        setting = GLUE_NEAT[task][method]
    elif method in ("lora", "dora"):
        lr, epochs = GLUE_LORA[task]
        setting = GlueSetting(Recipe(lr, lr, 0.0, epochs, GLUE_LORA_BATCH))
    elif method in GLUE_BASELINES:
        setting = GlueSetting(replace(neat_l.recipe, **GLUE_BASELINES[method]),
                              neat_l.options if method == "peanut" else {})
    else:
        raise ValueError(f"No GLUE recipe for method {method!r}.")
    return GlueSetting(setting.recipe, {**GLUE_OPTIONS.get(method, {}), **setting.options})
