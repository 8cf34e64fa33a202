"""Generated ImageFolder trees: noisy images of one colour per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def write_image_folder(root: Path, splits: dict[str, int]) -> Path:
    """root/<split>/<colour>/<i>.png: noisy images of one colour per class."""
    rng = np.random.default_rng(0)
    for split, per_class in splits.items():
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root

