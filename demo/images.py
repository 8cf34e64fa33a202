"""Checking an uploaded image: one readable message for every way an upload can be unusable."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024   # larger uploads are refused before decoding
MAX_PIXELS = 40_000_000        # width x height; more is refused before decoding (decompression bombs)


class BadImage(ValueError):
    """An upload that cannot be used; the message is meant for the page."""


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def load_rgb(path: str | os.PathLike | None, max_bytes: int = MAX_BYTES,
             max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, str]:
    """The upload at `path` as an RGB image and a note on any conversion ("" if none); BadImage otherwise."""
    if not path:
        raise BadImage("Upload an image first (PNG, JPEG, WebP, ...) or pick one of the examples.")
    file = Path(path)
    size = file.stat().st_size if file.is_file() else 0
    if size == 0:
        raise BadImage(f"The uploaded file {file.name!r} is empty (0 bytes); upload an image file.")
    if size > max_bytes:
        raise BadImage(f"The uploaded file {file.name!r} is {_mb(size)}; the limit is {_mb(max_bytes)}.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(file)
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(f"The image {file.name!r} is {width} x {height} pixels; the limit is "
                               f"{max_pixels:,} pixels: scale it down first.")
            image.load()
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage(f"The uploaded file {file.name!r} is not an image this demo can read "
                       "(PNG, JPEG, WebP, GIF, BMP, TIFF).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"The image {file.name!r} is too large to decode (over {max_pixels:,} pixels): scale it "
                       "down first.") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadImage(f"The image {file.name!r} is corrupt or truncated and cannot be decoded ({err}).") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    mode = image.mode
    image = ImageOps.exif_transpose(image)
    if mode == "RGB":
        return image, ""
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat, f"The image had transparency ({mode}); it was put on a white background."
    return image.convert("RGB"), f"The image was {mode} ({_MODES.get(mode, 'not RGB')}); it was converted to RGB."


_MODES = {"L": "grayscale", "1": "black and white", "P": "palette", "CMYK": "CMYK", "I;16": "16-bit grayscale",
          "I": "32-bit grayscale", "F": "floating-point grayscale", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}
