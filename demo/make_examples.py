"""Writes the example images: one sklearn digit of each class 5-9 as the smoke suite shows them (24 x 24 RGB PNG).

    python -m demo.make_examples
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).parent / "examples"


def main() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    EXAMPLES.mkdir(exist_ok=True)
    for digit in range(5, 10):
        index = int(np.flatnonzero(digits.target == digit)[-1])  # the last of its class
        pixels = (digits.images[index] * (255 / 16)).round().astype(np.uint8).repeat(3, 0).repeat(3, 1)
        Image.fromarray(pixels).convert("RGB").save(EXAMPLES / f"digit_{digit}.png", optimize=True)


if __name__ == "__main__":
    main()
