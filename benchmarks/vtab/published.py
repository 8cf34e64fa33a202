"""Published image-classification numbers, as data with their sources, for the report to put beside ours.

Top-1 test accuracy (%) on the NEAT paper's eight datasets. FOURIERFT_TABLE_5 is the FourierFT paper's Table 5
(Gao et al. 2024, arXiv 2405.03003), which the NEAT paper's Table 4 reuses for its baselines (the NEAT paper's
text quotes the same averages: LoRA 77.58, FourierFT 80.29, LP 68.36, full fine-tuning 86.49). Of NEAT's own
per-dataset numbers only what the NEAT paper's text states is here (arXiv 2410.01870): the ViT-B average, and
StanfordCars with a depth-6 network. Nothing else is filled in: a missing cell is unknown, never guessed.
"""

from __future__ import annotations

from ..core.published import Published

FOURIERFT_TABLE_5 = "FourierFT paper (arXiv 2405.03003) Table 5"
NEAT_TEXT = "NEAT paper (arXiv 2410.01870), text"
ORDER = ("pets", "cars", "cifar10", "dtd", "eurosat", "fgvc", "resisc45", "cifar100")   # Table 5's columns


def _row(label: str, method: str, model: str, params: int | None, values: str) -> Published:
    *cells, average = (float(v) for v in values.split())
    return Published(label, method, model, {**dict(zip(ORDER, cells)), "average": average}, FOURIERFT_TABLE_5,
                     params)


VIT_B, VIT_L = "vit_base_patch16_224", "vit_large_patch16_224"
ROWS: tuple[Published, ...] = (
    _row("LP", "head", VIT_B, 0, "90.28 25.76 96.41 69.77 88.72 17.44 74.22 84.28 68.36"),
    _row("FF", "full", VIT_B, None, "93.14 79.78 98.92 77.68 99.05 54.84 96.13 92.38 86.49"),
    _row("LoRA (581K)", "lora", VIT_B, 581_000, "93.19 45.38 98.78 74.95 98.44 25.16 92.70 92.02 77.58"),
    _row("FourierFT (72K)", "fourierft", VIT_B, 72_000, "93.21 46.11 98.58 75.09 98.29 27.51 91.97 91.20 77.75"),
    _row("FourierFT (239K)", "fourierft", VIT_B, 239_000, "93.05 56.36 98.69 77.30 98.78 32.44 94.26 91.45 80.29"),
    _row("LP", "head", VIT_L, 0, "91.11 37.91 97.78 73.33 92.64 24.62 82.02 84.28 72.96"),
    _row("FF", "full", VIT_L, None, "94.43 88.90 99.15 81.79 99.04 68.25 96.43 93.58 90.20"),
    _row("LoRA (1.57M)", "lora", VIT_L, 1_570_000, "94.82 73.25 99.13 81.79 98.63 42.32 94.71 94.87 84.94"),
    _row("FourierFT (144K)", "fourierft", VIT_L, 144_000, "94.46 69.56 99.10 80.83 98.65 39.92 93.86 93.31 83.71"),
    _row("FourierFT (480K)", "fourierft", VIT_L, 480_000, "94.84 79.14 99.08 81.88 98.66 51.28 95.20 93.37 86.68"),
    Published("NEAT", "neat", VIT_B, {"average": 86.15}, NEAT_TEXT + " (ViT-B average)"),
    Published("NEAT (depth 6)", "neat", VIT_B, {"cars": 81.04}, NEAT_TEXT + " (StanfordCars, depth 6)",
              options={"depth": 6}),
)


# What the NEAT paper states about its sensitivity studies, in words (benchmarks.ablate prints them beside the
# measured tables; their numbers, apart from the depth-6 StanfordCars accuracy above, are not reproduced here).
STUDY_CLAIMS: dict[str, tuple[str, str]] = {
    "depth": ("depth 6 is best on StanfordCars (81.04%), about 1.7 points above depth 2; depths 8 and 10 fall "
              "slightly below depth 6", "NEAT paper (arXiv 2410.01870) Fig. 2 and text"),
    "activation": ("sin(2πx) beats ReLU on 6 of the 8 datasets, by most on DTD and FGVC",
                   "NEAT paper (arXiv 2410.01870) Table 5"),
}
