"""Training recipes and suites, as data, every value with its source. Any value can be overridden from the
command line; `--lrs` replaces a recipe's learning-rate grid.

Sources (shortened in the notes below):
- NEAT's image code, github yibozhong/peanut at 3ad9e03: `image-classification/run.sh` (per-dataset head lr,
  backbone lr, weight decay, 10 epochs), `main.py` (HF Trainer: per-device batch 64 from `args.py --bs`,
  gradient_accumulation_steps=4, so 256 per step; Trainer's defaults: max_grad_norm 1.0, linear decay without
  warm-up; Resize(224) + CenterCrop(224) bilinear for evaluation, RandomResizedCrop(224) + flip for training).
- FourierFT's image code, github Chaos96/fourierft at 4986a28: `experiments/ViT/<dataset>-base-3000.bash`
  (head lr, spectral lr `--fft_lr`, weight decay, n 3000, scale 300), `experiments/ViT/exec.py` (batch 50 from
  `args.py --bs` × gradient_accumulation_steps=4 = 200; DTD: all images, 80/20 then 90/10, as neat_vision.data).
- NEAT's GLUE scripts: yibozhong/peanut `natural-language-understanding/peanut-{s,l}.sh` and `glue.py`
  (AdamW, weight decay 0 from args.py, linear schedule with 6% warm-up, no gradient clipping, max length 512).
- FourierFT's GLUE scripts: Chaos96/fourierft `experiments/GLUE/<task>-base-best.sh` (n 1000, scale, head lr,
  spectral lr, epochs, batch 32) and `NLU_GLUE.py` (6% warm-up, no clipping, weight decay 0).
- LoRA: Hu et al. 2021 (arXiv 2106.09685) Table 9, RoBERTa-base (r = α = 8 on query and value; batch, lr and
  epochs per task), as in microsoft/LoRA `examples/NLU/roberta_base_<task>.sh` (weight decay 0.1, HF Trainer:
  max_grad_norm 1.0, warm-up ratio 0.06; no LoRA dropout: loralib's default; the scripts pass --lora_alpha 16). Stated deviation: the LoRA paper starts MRPC, RTE and STS-B from its
  MNLI-tuned LoRA checkpoint; benchmarks.glue starts every task from the pre-trained model.
- RoBERTa: Liu et al. 2019 (arXiv 1907.11692) Appendix Table 10: full fine-tuning on GLUE, lr {1e-5, 2e-5,
  3e-5}, batch {16, 32}, 10 epochs, weight decay 0.1, 6% warm-up; its fairseq command
  (examples/roberta/README.glue.md): --clip-norm 0.0, no gradient clipping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

NEAT_VIT = "yibozhong/peanut image-classification/run.sh"
NEAT_LOOP = ("yibozhong/peanut image-classification/main.py (HF Trainer: batch 64 x gradient accumulation 4, "
             "max_grad_norm 1.0, linear decay without warm-up)")
FOURIER_VIT = "Chaos96/fourierft experiments/ViT/{dataset}-base-3000.bash"
FOURIER_LOOP = "Chaos96/fourierft experiments/ViT/exec.py (batch 50 x gradient accumulation 4)"
NEAT_GLUE = "yibozhong/peanut natural-language-understanding/peanut-{size}.sh and glue.py"
FOURIER_GLUE = "Chaos96/fourierft experiments/GLUE/{task}-base-best.sh and NLU_GLUE.py"
LORA_GLUE = "LoRA paper (arXiv 2106.09685) Table 9; microsoft/LoRA examples/NLU/roberta_base_{task}.sh"
ROBERTA_GLUE = "RoBERTa paper (arXiv 1907.11692) Appendix Table 10 (RoBERTa-large's GLUE fine-tuning)"
ROBERTA_CODE = "RoBERTa's GLUE command, github facebookresearch/fairseq examples/roberta/README.glue.md"


@dataclass(frozen=True)
class Recipe:
    """One method on one dataset: head lr / lr (backbone: the adapter, or all weights for `full`) / weight
    decay, the loop's shape, and `sources`: {field name: where its value comes from, or "our choice: why"}.

    batch_size is the effective batch per optimizer step (gradient accumulation makes it whatever the
    micro-batch); clip_grad the gradient-norm clip (None: none); warmup the linear warm-up's share of the
    steps. lrs is the learning-rate grid a run sweeps (selected on validation); `sweep` names the field it sets
    ("lr", or "head_lr" for the linear probe); an empty grid means the recipe's own value only."""

    head_lr: float
    lr: float
    weight_decay: float
    epochs: int = 10
    batch_size: int = 256
    clip_grad: float | None = 1.0
    warmup: float = 0.0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    lrs: tuple[float, ...] = ()
    sweep: str = "lr"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def grid(self) -> tuple[float, ...]:
        """The learning rates to train: the sweep grid, else the recipe's value of the swept field."""
        return self.lrs or (getattr(self, self.sweep),)

    def at(self, lr: float) -> Recipe:
        """This recipe with its swept field (lr or head_lr) set to `lr`."""
        return replace(self, **{self.sweep: lr})

    def with_values(self, note: str, **values) -> Recipe:
        """This recipe with `values` replaced, each cited by `note`."""
        return replace(self, **values, sources={**self.sources, **{k: note for k in values}})

    def uncited(self) -> list[str]:
        """Fields without a source (a defect: every value cites where it comes from)."""
        return [f.name for f in fields(self) if f.name != "sources" and f.name not in self.sources]

    def describe(self) -> dict:
        """The values and their sources, for result files."""
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"},
                "sources": dict(self.sources)}


def _cited(head_lr: float, lr: float, weight_decay: float, note: str, **rest) -> Recipe:
    recipe = Recipe(head_lr, lr, weight_decay, **rest)
    return replace(recipe, sources={f.name: note for f in fields(recipe) if f.name != "sources"})


# --- image classification: ViT-B/16 (ImageNet-21k) on the NEAT paper's eight datasets ---------------------
def _neat_vit(dataset: str, head_lr: float, lr: float, weight_decay: float) -> Recipe:
    """NEAT's published recipe for one dataset."""
    base = _cited(head_lr, lr, weight_decay, f"{NEAT_VIT} ({dataset})")
    return (base.with_values(NEAT_LOOP, batch_size=256, clip_grad=1.0, warmup=0.0)
            .with_values("RandomResizedCrop's default scale (torchvision, main.py train_transforms)",
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
UNKNOWN_ADAPTER_LR = ("unknown (no published recipe for this method on these datasets) — our choice: a 3-point "
                      "grid a factor ~3 apart around the adapters' usual range, selected on validation")
SAME_HEAD = "our choice: the dataset's NEAT head lr and weight decay (the same classifier for every method)"


def _paper_recipe(method: str, dataset: str) -> Recipe:
    base = PAPER_RECIPES[dataset]
    if method in ("neat", "peanut"):   # PEFT's PEANuT is the same method: NEAT's recipe
        return base
    if method == "fourierft":
        head_lr, lr, wd = FOURIERFT_VIT[dataset]
        return (base.with_values(FOURIER_VIT.format(dataset=dataset), head_lr=head_lr, lr=lr, weight_decay=wd)
                .with_values(FOURIER_LOOP, batch_size=200))
    base = base.with_values(SAME_HEAD, head_lr=base.head_lr, weight_decay=base.weight_decay)
    if method in ("lora", "dora"):
        return base.with_values(UNKNOWN_ADAPTER_LR, lr=3e-3, lrs=(1e-3, 3e-3, 1e-2))
    if method == "vera":
        return base.with_values(UNKNOWN_ADAPTER_LR + " (VeRA's scaling vectors take larger steps)", lr=1e-2,
                                lrs=(3e-3, 1e-2, 3e-2))
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
    "digits59": _cited(1e-2, 1e-2, 1e-4, SMOKE_LOOP, batch_size=32, crop_scale=(0.75, 1.0)).with_values(
        SMOKE_NOTE, batch_size=32, crop_scale=(0.75, 1.0)),
    "digits04": _cited(1e-3, 1e-3, 5e-2, "our choice: pre-training the smoke ViT from scratch (30 epochs, "
                                         "strong weight decay, the same loop)", epochs=30)
    .with_values(SMOKE_NOTE, batch_size=32, crop_scale=(0.75, 1.0))
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


# --- GLUE (RoBERTa-base) -----------------------------------------------------------------------------------
GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")
DEV_FRACTION = 0.1     # share of train held out to select the lr when a GLUE run sweeps several
DEV_MAX = 2000         # at most this many examples held out
DEV_NOTE = ("our choice: GLUE's test labels are not public and the papers report validation, so a sweep selects "
            "the lr (and epoch) on a seeded 10% slice of train (at most 2,000 examples) and reports validation")


@dataclass(frozen=True)
class GlueSetting:
    """One method on one GLUE task: its recipe and the MethodOptions fields it sets (scale, ranks), cited."""

    recipe: Recipe
    options: dict = field(default_factory=dict)
    option_sources: Mapping[str, str] = field(default_factory=dict, compare=False)


def _glue(head_lr: float, lr: float, epochs: int, batch_size: int, note: str, *, weight_decay: float = 0.0,
          clip_grad: float | None = None, options: dict | None = None) -> GlueSetting:
    recipe = _cited(head_lr, lr, weight_decay, note, epochs=epochs, batch_size=batch_size, clip_grad=clip_grad,
                    warmup=0.06, crop_scale=(1.0, 1.0))
    recipe = recipe.with_values("not used by text", crop_scale=(1.0, 1.0))
    return GlueSetting(recipe, options or {}, {k: note for k in (options or {})})


def _neat_glue(size: str, task: str, scale: float, head_lr: float, lr: float, epochs: int, batch: int):
    return _glue(head_lr, lr, epochs, batch, f"{NEAT_GLUE.format(size=size)} ({task})",
                 options={"scale": scale, "rank": 1 if size == "s" else 8})


# NEAT-S / NEAT-L per task: scale / head lr / backbone lr / epochs / batch (rank 1 / 8, query and value).
GLUE_NEAT: dict[str, dict[str, GlueSetting]] = {t: {"neat-s": _neat_glue("s", t, *s), "neat-l": _neat_glue("l", t, *l)}
                                                for t, (s, l) in {
    "cola": ((0.1, 1e-3, 5e-3, 100, 64), (0.1, 1e-3, 1e-3, 100, 64)),
    "mrpc": ((0.01, 5e-3, 5e-3, 100, 64), (0.01, 5e-3, 5e-3, 100, 64)),
    "qnli": ((0.1, 1e-3, 1e-3, 40, 32), (0.01, 1e-3, 1e-3, 40, 32)),
    "mnli": ((0.01, 5e-3, 5e-3, 20, 32), (0.01, 5e-3, 5e-3, 20, 32)),
    "qqp": ((1.0, 1e-3, 1e-3, 20, 64), (0.01, 5e-3, 5e-3, 20, 64)),
    "rte": ((1.0, 1e-3, 1e-3, 100, 32), (0.01, 5e-3, 5e-3, 100, 32)),
    "sst2": ((0.01, 5e-3, 5e-3, 40, 32), (0.01, 5e-3, 5e-3, 40, 32)),
    "stsb": ((0.1, 1e-3, 5e-3, 100, 64), (0.1, 5e-3, 5e-3, 100, 64)),
}.items()}

# LoRA, RoBERTa-base: (lr, epochs, batch) per task; r = alpha = 8 on query and value.
GLUE_LORA: dict[str, tuple[float, int, int]] = {
    "mnli": (5e-4, 30, 16), "sst2": (5e-4, 60, 16), "mrpc": (4e-4, 30, 16), "cola": (4e-4, 80, 32),
    "qnli": (4e-4, 25, 32), "qqp": (5e-4, 25, 16), "rte": (5e-4, 80, 32), "stsb": (4e-4, 40, 16),
}
MNLI_START = ("stated deviation: the LoRA paper starts MRPC, RTE and STS-B from its MNLI-tuned LoRA; here every "
              "task starts from the pre-trained model")

# FourierFT, RoBERTa-base: (scale, head lr, spectral lr, epochs) per task; n 1000, batch 32. The paper has no
# MNLI / QQP: those take QNLI's row (our choice: its largest task, 105k pairs, the closest in size).
GLUE_FOURIERFT: dict[str, tuple[float, float, float, int]] = {
    "cola": (49.0, 8e-3, 1.2e-1, 100), "mrpc": (151.0, 6e-3, 5e-2, 30), "qnli": (29.0, 1e-3, 1e-1, 40),
    "rte": (110.0, 1.1e-2, 9e-2, 90), "sst2": (140.0, 6e-3, 5e-2, 40), "stsb": (84.0, 9e-3, 9e-2, 60),
}


def _lora_glue(task: str, method: str) -> GlueSetting:
    lr, epochs, batch = GLUE_LORA[task]
    note = LORA_GLUE.format(task=task) + (" (DoRA on GLUE: unknown — our choice: LoRA's recipe)"
                                          if method == "dora" else "")
    setting = _glue(lr, lr, epochs, batch, note, weight_decay=0.1, clip_grad=1.0,
                    options={"lora_r": 8, "lora_alpha": 8, "lora_dropout": 0.0})   # loralib's default dropout
    if task in ("mrpc", "rte", "stsb"):
        return replace(setting, option_sources={**setting.option_sources, "init": MNLI_START})
    return setting


def _fourierft_glue(task: str) -> GlueSetting:
    source = task if task in GLUE_FOURIERFT else "qnli"
    scale, head_lr, lr, epochs = GLUE_FOURIERFT[source]
    note = FOURIER_GLUE.format(task=source) + ("" if source == task else f" — {task}: unknown, our choice: "
                                               "QNLI's row (FourierFT's largest task)")
    return _glue(head_lr, lr, epochs, 32, note, options={"n_frequency": 1000, "fourier_scaling": scale})


def glue_setting(method: str, task: str) -> GlueSetting:
    """The recipe and method options of `method` on GLUE `task` (RoBERTa-base settings), with sources."""
    if task not in GLUE_NEAT:
        raise ValueError(f"Unknown GLUE task {task!r}; choose from {', '.join(GLUE_TASKS)}.")
    neat_l = GLUE_NEAT[task]["neat-l"]
    if method in GLUE_NEAT[task]:
        return GLUE_NEAT[task][method]
    if method in ("lora", "dora"):
        return _lora_glue(task, method)
    if method == "fourierft":
        return _fourierft_glue(task)
    if method == "peanut":   # PEFT's NEAT: NEAT-L's row
        return neat_l
    if method == "bitfit":
        recipe = neat_l.recipe.with_values("unknown (the BitFit paper searched 1e-4 to 1e-3) — our choice: a "
                                           "grid over that range, selected on a held-out slice",
                                           lr=1e-3, lrs=(1e-4, 3e-4, 1e-3))
        return GlueSetting(recipe)
    if method == "head":
        return GlueSetting(neat_l.recipe.with_values("unknown — our choice: NEAT-L's loop, the head lr swept",
                                                     lrs=(1e-3, 3e-3, 1e-2), sweep="head_lr"))
    if method == "full":
        recipe = _cited(2e-5, 2e-5, 0.1, ROBERTA_GLUE, epochs=10, batch_size=32, clip_grad=None, warmup=0.06,
                        crop_scale=(1.0, 1.0), lrs=(1e-5, 2e-5, 3e-5))
        return GlueSetting(recipe.with_values(ROBERTA_CODE + " (--clip-norm 0.0: no clipping)", clip_grad=None)
                           .with_values(ROBERTA_GLUE + " searches batch {16, 32} — our choice: 32 for every task "
                                        "(one batch, its lr grid swept)", batch_size=32)
                           .with_values("not used by text", crop_scale=(1.0, 1.0)))
    raise ValueError(f"No GLUE recipe for method {method!r}.")
