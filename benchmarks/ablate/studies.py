"""The ablation studies as plain data (no torch): which variants each study trains, on which datasets, with which
learning rates, what their parameter budgets are tied to, and the numbers the GPU-time estimate uses, all cited.

A variant is one column of the paper's figure: a registered method (core.catalog.METHODS)
with some MethodOptions fields set. Its name is the result's "method", so the vtab / GLUE results layout
(runs/<variant>_<dataset>_seed<seed>_lr<lr>.json), resume, lr selection (core.sweep.choose) and report pieces work on
variants unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..glue.recipes import GLUE_LORA, GLUE_NEAT, GLUE_TASKS
from ..vtab.recipes import IMAGE_DATASETS, PAPER_DATASETS, SMOKE_DATASETS

NEAT_PAPER = "NEAT paper (arXiv 2410.01870)"


@dataclass(frozen=True)
class Variant:
    """One trained setting of a study: `name` (the results' method), the registered `method` that builds it, the
    MethodOptions fields it sets, and its `label` in tables and plots."""

    name: str
    method: str
    options: Mapping = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Study:
    """A sensitivity study: its variants (per domain: "image" and, for the scale study, "glue"), default datasets
    per suite, how learning rates are chosen, and whose adapter parameters the other variants are sized to.

    lrs: "recipe": every variant at the recipe's own lr (the same hyper-parameters for all, as the paper's depth
         figure); "sweep": each variant at its own lr, selected on validation from the study's grid.
    match: per domain, (reference variant, variants sized to its trainable parameters through their size knob).
    """

    name: str
    title: str
    question: str
    variants: Mapping[str, tuple[Variant, ...]]
    datasets: Mapping[str, tuple[str, ...]]
    lrs: str
    match: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


DEPTHS = (2, 4, 6, 8, 10)
TARGET_SETS = {"qv": "q, v", "qv_mlp": "q, v + MLP", "all_linear": "all linear"}

STUDIES: dict[str, Study] = {s.name: s for s in [
    Study("depth", "Depth of NEAT's weight network",
          "How does the depth of f change accuracy (the same hyper-parameters for every depth)?",
          {"image": tuple(Variant(f"neat-depth{d}", "neat", {"depth": d}, str(d)) for d in DEPTHS)},
          {"paper": ("cars",), "smoke": SMOKE_DATASETS}, "recipe",
          sources={"variants": f"{NEAT_PAPER} Fig. 2: depth 2 to 10 on StanfordCars, the same hyper-parameters",
                   "datasets": f"{NEAT_PAPER} Fig. 2 (StanfordCars)"}),
    Study("activation", "Activation of NEAT's weight network",
          "ReLU or sin(2*pi*x), each at its own validation-selected lr?",
          {"image": (Variant("neat-relu", "neat", {"activation": "relu"}, "ReLU"),
                     Variant("neat-sin", "neat", {"activation": "sin"}, "sin(2πx)"))},
          {"paper": PAPER_DATASETS, "smoke": SMOKE_DATASETS}, "sweep",
          sources={"variants": f"{NEAT_PAPER} Table 5 (ReLU vs sin on the eight image datasets)",
                   "datasets": f"{NEAT_PAPER} Table 5"}),
    Study("targets", "Which modules NEAT adapts, at equal parameters",
          "q,v vs q,v + MLP vs all linear layers, NEAT's rank adjusted so the trainable parameters stay equal?",
          {"image": tuple(Variant(f"neat-{p.replace('_', '-')}", "neat", {"preset": p}, label)
                          for p, label in TARGET_SETS.items())},
          {"paper": PAPER_DATASETS, "smoke": SMOKE_DATASETS}, "sweep",
          match={"image": ("neat-qv", ("neat-qv-mlp", "neat-all-linear"))},
          sources={"variants": f"{NEAT_PAPER} Fig. 3 (adapted modules at equal trainable parameters)",
                   "datasets": "our choice: the paper's eight image datasets (the figure's own are not listed here)"}),
    Study("scale", "NEAT's scale s: 1 or auto",
          "Does s = 'auto' (rms(s*H) = LoRA's rms(A) at init) make NEAT's best lr independent of the weights' "
          "scale, at its own validation-selected lr and at LoRA's?",
          {"image": (Variant("neat-s1", "neat", {"scale": 1.0}, "s = 1"),
                     Variant("neat-auto", "neat", {"scale": "auto"}, "s = auto"),
                     Variant("lora", "lora", {}, "LoRA")),
           "glue": (Variant("neat-l-s1", "neat-l", {"scale": 1.0}, "NEAT-L, s = 1"),
                    Variant("neat-l-auto", "neat-l", {"scale": "auto"}, "NEAT-L, s = auto"),
                    Variant("lora", "lora", {}, "LoRA"))},
          {"paper": PAPER_DATASETS, "smoke": SMOKE_DATASETS}, "sweep",
          match={"image": ("neat-s1", ("lora",)), "glue": ("neat-l-s1", ("lora",))},
          sources={"variants": "our choice (beyond the paper): s = 1 against auto, LoRA for its lr",
                   "datasets": "our choice: the paper's eight image datasets; GLUE tasks when given"}),
]}

# The learning rates a "sweep" study selects from (each variant its own, on validation), per suite.
SWEEP_GRIDS: dict[str, tuple[float, ...]] = {
    "paper": (1e-3, 3e-3, 1e-2, 3e-2),
    "smoke": (3e-3, 1e-2, 3e-2, 1e-1),
}
SWEEP_GRID_NOTE = ("our choice: one grid a factor ~3 apart for every variant, spanning NEAT's published image lrs "
                   "(5e-3, 1e-2) and LoRA's grid (1e-3 to 1e-2; smoke: the smoke suite's grid), selected on "
                   "validation; it holds every lr LoRA can choose, so NEAT has a result at LoRA's lr")
RECIPE_LR_NOTE = "the study's rule: every variant at the recipe's own lr (the same hyper-parameters, as the paper)"
GLUE_GRID_NOTE = ("our choice: NEAT-L's published lr and LoRA's for the task (its script, as Table 9), selected on "
                  "the held-out slice of train; LoRA trains its published lr")


def glue_grid(task: str) -> tuple[float, ...]:
    """NEAT's lrs in the GLUE scale study: LoRA's published lr (so NEAT has a result at it) and NEAT-L's."""
    return tuple(sorted({GLUE_LORA[task][0], GLUE_NEAT[task]["neat-l"].lr}))


def domain(datasets: list[str]) -> str:
    """"glue" when every name is a GLUE task, "image" when every name is an image dataset, else a ValueError."""
    if datasets and all(d in GLUE_TASKS for d in datasets):
        return "glue"
    if all(d in IMAGE_DATASETS for d in datasets):
        return "image"
    unknown = [d for d in datasets if d not in IMAGE_DATASETS and d not in GLUE_TASKS]
    if unknown:
        raise ValueError(f"Unknown dataset(s) {', '.join(unknown)}; choose image datasets ({', '.join(IMAGE_DATASETS)}) "
                         f"or, for the scale study, GLUE tasks ({', '.join(GLUE_TASKS)}).")
    raise ValueError("Give image datasets or GLUE tasks, not both in one run (their results go to different --out "
                     "folders).")


def study_variants(study: str, datasets: list[str]) -> tuple[Variant, ...]:
    """The variants `study` trains on `datasets`, or a ValueError naming what is wrong."""
    if study not in STUDIES:
        raise ValueError(f"Unknown study {study!r}; choose from {', '.join(STUDIES)}.")
    kind = domain(datasets)
    variants = STUDIES[study].variants.get(kind)
    if variants is None:
        raise ValueError(f"The {study} study runs on image datasets ({', '.join(IMAGE_DATASETS)}); GLUE tasks are "
                         "for the scale study only.")
    return variants


# --- the GPU-time estimate of --dry-run --------------------------------------------------------------------
# Training throughput assumed when neither --images-per-s nor finished results under --out give one.
ASSUMED_RATE: dict[str, tuple[float, str]] = {
    "paper": (2000.0, "assumed, not measured: the project's throughput goal for ViT-B/16 training on one H100 "
                      "(README, Benchmarks); pass --images-per-s, or measure it with python -m benchmarks.speed"),
    "smoke": (1000.0, "measured: about 1,000 training images/s of the smoke ViT with NEAT on one thread of a 2-core "
                      "CPU machine, 2026-11-25 (the runs' train_images_per_s)"),
}
