"""The image-classification suite's recipes and suites, as data, every value with its source. Any value can be
overridden from the command line; `--lrs` replaces a recipe's learning-rate grid.

Sources (shortened in the notes below):
- NEAT's image code, github yibozhong/peanut at 3ad9e03: `image-classification/run.sh` (per-dataset head lr,
  backbone lr, weight decay, 10 epochs), `main.py` (HF Trainer: per-device batch 64 from `args.py --bs`,
  gradient_accumulation_steps=4, so 256 per step; Trainer's defaults: max_grad_norm 1.0, linear decay without
  warm-up; Resize(224) + CenterCrop(224) bilinear for evaluation, RandomResizedCrop(224) + flip for training).
- FourierFT's image code, github Chaos96/fourierft at 4986a28: `experiments/ViT/<dataset>-base-3000.bash`
  (head lr, spectral lr `--fft_lr`, weight decay, n 3000, scale 300), `experiments/ViT/exec.py` (batch 50 from
  `args.py --bs` × gradient_accumulation_steps=4 = 200; DTD: all images, 80/20 then 90/10, as vtab/data.py).
- VeRA: Kopiczko et al. 2024 (arXiv 2310.11454) Table 11, ViT-Base: per dataset the VeRA lr and head lr (CIFAR100
  2e-2 / 4e-3, Food101 4e-2 / 4e-2, Flowers102 4e-2 / 4e-3, RESISC45 7e-2 / 5e-3), AdamW, linear schedule, weight
  decay 0.01, rank 256 on query and value (the suite's VeRA: vera_r 256, peft_target qv); 10 epochs (Sec. 4.4); no
  batch size. VeRA trained on 10 images per class (Sec. 4.4); this suite trains on the full train split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..core.recipe import Recipe

NEAT_VIT = "yibozhong/peanut image-classification/run.sh"
NEAT_LOOP = ("yibozhong/peanut image-classification/main.py (HF Trainer: batch 64 x gradient accumulation 4, "
             "max_grad_norm 1.0, linear decay without warm-up)")
FOURIER_VIT = "Chaos96/fourierft experiments/ViT/{dataset}-base-3000.bash"
FOURIER_LOOP = "Chaos96/fourierft experiments/ViT/exec.py (batch 50 x gradient accumulation 4)"
SUITE_MICRO = "the suite's micro-batch or --micro-batch (memory only: accumulation keeps the effective batch)"
SHARE_WARMUP = "not used: the warm-up is a share of the steps (warmup)"


def _image(head_lr: float, lr: float, weight_decay: float, note: str, *, epochs: int = 10, batch_size: int = 256,
           clip_grad: float | None = 1.0, crop_scale: tuple[float, float] = (0.08, 1.0)) -> Recipe:
    """An image recipe whose values are all cited by `note` (but micro-batch and warm-up steps, which the image
    suites never fix)."""
    recipe = Recipe(lr, epochs, batch_size, weight_decay, head_lr=head_lr, clip_grad=clip_grad,
                    data={"crop_scale": crop_scale})
    return recipe.with_values(SUITE_MICRO, micro_batch=None).with_values(SHARE_WARMUP, warmup_steps=None).cited(note)


# --- ViT-B/16 (ImageNet-21k) on the NEAT paper's eight datasets --------------------------------------------
def _neat_vit(dataset: str, head_lr: float, lr: float, weight_decay: float) -> Recipe:
    """NEAT's published recipe for one dataset."""
    base = _image(head_lr, lr, weight_decay, f"{NEAT_VIT} ({dataset})")
    return (base.with_values(NEAT_LOOP, batch_size=256, clip_grad=1.0, warmup=0.0)
            .with_data("RandomResizedCrop's default scale (torchvision, main.py train_transforms)",
                       crop_scale=(0.08, 1.0))
            .with_values("the published value only (no sweep)", lrs=(), sweep="lr"))


# NEAT's recipe per dataset (head lr, backbone lr, weight decay; 10 epochs). run.sh has no DTD line.
PAPER_RECIPES: dict[str, Recipe] = {
    "pets": _neat_vit("pets", 5e-3, 5e-3, 8e-4),
    "cifar10": _neat_vit("cifar10", 5e-3, 5e-3, 9e-5),
    "dtd": _neat_vit("dtd", 5e-3, 5e-3, 7e-5).with_values(
        "unknown (run.sh has no DTD line) — our choice: 5e-3, run.sh's most common value (head lr on 4, "
        "backbone lr on 5 of its 7 datasets)",
        head_lr=5e-3, lr=5e-3).with_values(f"{FOURIER_VIT.format(dataset='dtd')} (FourierFT's DTD recipe)",
                                           weight_decay=7e-5),
    "eurosat": _neat_vit("eurosat", 5e-3, 5e-3, 3e-4),
    "resisc45": _neat_vit("resisc45", 1e-2, 5e-3, 3e-4),
    "cars": _neat_vit("cars", 1e-2, 1e-2, 4e-5),
    "fgvc": _neat_vit("fgvc", 1e-2, 1e-2, 7e-5),
    "cifar100": _neat_vit("cifar100", 5e-3, 5e-3, 1e-4),
}
PAPER_DATASETS = tuple(PAPER_RECIPES)

# FourierFT's published recipe per dataset: head lr, spectral lr, weight decay (n 3000, scale 300, 10 epochs).
FOURIERFT_VIT: dict[str, tuple[float, float, float]] = {
    "pets": (1e-3, 3e-1, 8e-4), "cifar10": (1e-3, 3e-1, 9e-5), "dtd": (1e-3, 3e-1, 7e-5),
    "eurosat": (8e-4, 2e-1, 3e-4), "resisc45": (1e-3, 3e-1, 3e-4), "cars": (1e-3, 3e-1, 4e-5),
    "fgvc": (1e-3, 3e-1, 7e-5), "cifar100": (7e-4, 2e-1, 1e-4),
}
VERA_VIT = "VeRA paper (arXiv 2310.11454) Table 11 (ViT-Base)"
# VeRA's ViT-Base recipe where Table 11 covers one of the suite's datasets: (head lr, VeRA lr).
VERA_VIT_TABLE: dict[str, tuple[float, float]] = {"cifar100": (4e-3, 2e-2), "resisc45": (5e-3, 7e-2)}
VERA_FULL_SPLIT = ("stated deviation: VeRA trained on 10 images per class (Sec. 4.4); this suite trains on the full "
                   "train split")
VERA_LOOP = ("unknown (Table 11 gives no batch size, clipping or warm-up) — our choice: NEAT's loop (main.py: batch "
             "256, clip 1.0, no warm-up), the same for every method")
VERA_GRID = (3e-3, 1e-2, 2e-2, 4e-2, 7e-2)
VERA_GRID_NOTE = ("unknown (VeRA's Table 11 covers CIFAR100, Food101, Flowers102 and RESISC45 only) — our choice: a "
                  "grid holding every VeRA lr Table 11 gives for ViT-Base (2e-2, 4e-2, 7e-2) and, below them, 3e-3 "
                  "and 1e-2 (here the full train split gives far more steps than VeRA's 10 images per class, so a "
                  "smaller lr may suit), selected on validation")
UNKNOWN_ADAPTER_LR = ("unknown (no published recipe for this method on these datasets) — our choice: a 3-point "
                      "grid a factor ~3 apart around the adapters' usual range, selected on validation")
SAME_HEAD = "our choice: the dataset's NEAT head lr and weight decay (the same classifier for every method)"


def _vera_vit(dataset: str) -> Recipe:
    """VeRA's Table 11 recipe on `dataset` (in the suite's loop, on the full train split)."""
    head_lr, lr = VERA_VIT_TABLE[dataset]
    table = f"{VERA_VIT} ({dataset}; rank 256 on query and value); {VERA_FULL_SPLIT}"
    return (PAPER_RECIPES[dataset].with_values(table, head_lr=head_lr, lr=lr, weight_decay=0.01, schedule="linear")
            .with_values(f"{VERA_VIT}: the published value only (no sweep)", lrs=(), sweep="lr")
            .with_values(f"VeRA paper (arXiv 2310.11454) Sec. 4.4 (results after 10 epochs); {VERA_FULL_SPLIT}",
                         epochs=10)
            .with_values(VERA_LOOP, batch_size=256, clip_grad=1.0, warmup=0.0))


def _paper_recipe(method: str, dataset: str) -> Recipe:
    base = PAPER_RECIPES[dataset]
    if method in ("neat", "peanut"):   # PEFT's PEANuT is the same method: NEAT's recipe
        return base
    if method == "vera" and dataset in VERA_VIT_TABLE:
        return _vera_vit(dataset)
    if method == "fourierft":
        head_lr, lr, wd = FOURIERFT_VIT[dataset]
        return (base.with_values(FOURIER_VIT.format(dataset=dataset), head_lr=head_lr, lr=lr, weight_decay=wd)
                .with_values(FOURIER_LOOP, batch_size=200))
    base = base.with_values(SAME_HEAD, head_lr=base.head_lr, weight_decay=base.weight_decay)
    if method in ("lora", "dora"):
        return base.with_values(UNKNOWN_ADAPTER_LR, lr=3e-3, lrs=(1e-3, 3e-3, 1e-2))
    if method == "vera":
        return base.with_values(VERA_GRID_NOTE, lr=2e-2, lrs=VERA_GRID)
    if method == "head":
        return base.with_values("unknown (the FourierFT paper's LP row gives no recipe) — our choice: a "
                                "3-point grid on the head lr", head_lr=3e-3, lrs=(1e-3, 3e-3, 1e-2), sweep="head_lr")
    if method == "full":
        return base.with_values("unknown (the FourierFT paper's FF row gives no recipe) — our choice: the usual "
                                "ViT fine-tuning range, selected on validation", lr=3e-5, lrs=(1e-5, 3e-5, 1e-4))
    raise ValueError(f"No image-classification recipe for method {method!r}.")


# --- the offline smoke suite: a small ViT pre-trained on digits 0-4, adapted to digits 5-9 --------------------
SMOKE_NOTE = ("our choice: the smoke suite is a CPU pipeline check on 564 training images (batch 32 gives 17 steps "
              "per epoch; digits are not flip-invariant and a tight crop would cut strokes off)")
SMOKE_GRID = ("our choice: one grid a factor ~3 apart for every adapter method (widened once to 1e-1 where "
              "the validation-best lr sat at its edge); selected on validation")
SMOKE_LOOP = ("our choice: NEAT's ViT recipe on a small scale (run.sh: 10 epochs, head lr 5e-3 to 1e-2, weight "
              "decay 4e-5 to 8e-4; main.py: clip 1.0, no warm-up)")
SMOKE_RECIPES: dict[str, Recipe] = {
    "digits59": _image(1e-2, 1e-2, 1e-4, SMOKE_LOOP, batch_size=32, crop_scale=(0.75, 1.0))
    .with_values(SMOKE_NOTE, batch_size=32).with_data(SMOKE_NOTE, crop_scale=(0.75, 1.0)),
    "digits04": _image(1e-3, 1e-3, 5e-2, "our choice: pre-training the smoke ViT from scratch (30 epochs, "
                                         "strong weight decay, the same loop)", epochs=30)
    .with_values(SMOKE_NOTE, batch_size=32).with_data(SMOKE_NOTE, crop_scale=(0.75, 1.0))
    .with_values("our choice: no clipping when pre-training from scratch (clipped at 1.0, the backbone's features "
                 "transferred worse: every method's validation accuracy on digits 5-9 dropped)", clip_grad=None),
}
SMOKE_DATASETS = ("digits59",)


def _smoke_recipe(method: str, dataset: str) -> Recipe:
    base = SMOKE_RECIPES[dataset]
    if method == "head":
        return base.with_values(SMOKE_GRID, head_lr=1e-2, lrs=(3e-3, 1e-2, 3e-2), sweep="head_lr")
    if method == "full":
        return base.with_values(SMOKE_GRID + " (all weights: a 10x lower range)", lr=1e-3, lrs=(3e-4, 1e-3, 3e-3))
    return base.with_values(SMOKE_GRID, lr=1e-2, lrs=(3e-3, 1e-2, 3e-2, 1e-1))


IMAGE_DATASETS = PAPER_DATASETS + tuple(SMOKE_RECIPES)


def recipe_for(method: str, dataset: str) -> Recipe:
    """The recipe of `method` on image dataset `dataset`, with its sources."""
    if dataset in PAPER_RECIPES:
        return _paper_recipe(method, dataset)
    if dataset in SMOKE_RECIPES:
        return _smoke_recipe(method, dataset)
    raise ValueError(f"Unknown dataset {dataset!r}; choose from {', '.join(IMAGE_DATASETS)}.")


@dataclass(frozen=True)
class Suite:
    """What `python -m benchmarks.vtab --suite NAME` runs by default: datasets, methods, the backbone and how
    images are preprocessed (overrides of timm's data config), the micro-batch, whether adapter sizes are
    matched to one method's, processes' threads and workers. The smoke model is too small for intra-op
    parallelism to pay, and one thread per process stays fast when the cores are shared."""

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    model: str
    model_args: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    micro_batch: int = 64
    match_params: str | None = None
    workers: int | None = None    # DataLoader workers per process (None: min(8, cpu count))
    threads: int | None = None    # torch CPU threads (None: torch's default)
    save_adapters: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


SUITES: dict[str, Suite] = {
    "paper": Suite(PAPER_DATASETS, ("neat", "lora", "dora", "fourierft", "peanut", "vera", "head", "full"),
                   "vit_base_patch16_224.orig_in21k", preprocessing={"crop_pct": 1.0, "interpolation": "bilinear"},
                   micro_batch=64,
                   sources={"model": "the NEAT and FourierFT papers' ViT-B/16 (google/vit-base-patch16-224-in21k; "
                                     "timm's orig_in21k tag holds the same weights)",
                            "preprocessing": "yibozhong/peanut image-classification/main.py: Resize(224) + "
                                             "CenterCrop(224), torchvision's default bilinear",
                            "micro_batch": "main.py: per-device batch 64 (args.py --bs)",
                            "match_params": "none: each method at its published size (Table 4 / Table 5 compare "
                                            "at the published sizes)"}),
    "smoke": Suite(SMOKE_DATASETS, ("neat", "lora", "head", "full"), "vit_tiny_patch16_224",
                   model_args={"img_size": 16, "patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3},
                   micro_batch=32, match_params="neat", workers=0, threads=1, save_adapters=("neat", "lora"),
                   sources={"match_params": "our choice: LoRA sized to NEAT's adapter parameters, so the table "
                                            "compares equal budgets"}),
}
