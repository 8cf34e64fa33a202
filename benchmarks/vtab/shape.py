"""How the image-classification suite's report reads (core.report.Shape): plain data."""

from __future__ import annotations

from typing import Any

from ..core.catalog import descriptions
from ..core.report import Shape
from .published import ORDER, ROWS
from .recipes import IMAGE_DATASETS

# Where a run's protocol is not the one of the published rows beside it: (method or None for all, dataset) -> note.
PROTOCOL_NOTES: dict[tuple[str | None, str], str] = {
    (None, "dtd"): "DTD: its one train/test partition as the Hub copy holds it (3,760 / 1,880), never pooled; "
                   "FourierFT's Table 5 pooled all 5,640 images and split them 80/20, so its DTD cells and averages "
                   "come from another split than ours.",
    ("vera", "cifar100"): "VeRA on CIFAR100 and RESISC45: VeRA's Table 11 recipe (arXiv 2310.11454), which VeRA "
                          "trained on 10 images per class; here on the full train split.",
}
PROTOCOL_NOTES["vera", "resisc45"] = PROTOCOL_NOTES["vera", "cifar100"]


def protocol_notes(results: list[dict[str, Any]]) -> list[str]:
    """The PROTOCOL_NOTES that the results' (method, dataset) pairs call for, each once."""
    ran = {(r["method"], r["dataset"]) for r in results}
    wanted = [note for (method, dataset), note in PROTOCOL_NOTES.items()
              if any(d == dataset and method in (None, m) for m, d in ran)]
    return list(dict.fromkeys(wanted))


SHAPE = Shape("vtab", "Image classification results", IMAGE_DATASETS, "Top-1 test accuracy (%)", "top-1 accuracy",
              "validation accuracy", descriptions("image"), published=ROWS, published_average=ORDER,
              result_notes=protocol_notes)
