"""Training recipes and suites, as data. Every value can be overridden from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    "digits59": Recipe(5e-3, 5e-3, 1e-4, epochs=8, batch_size=32, crop_scale=(0.75, 1.0)),
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
    workers: int = 8
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
