"""Image -> the array WD-style taggers expect (reference/datasets.md §10.1).

Alpha composited on white, white padding to a centred square, bicubic resize to the model's
input size, BGR channel order, float32 values 0-255, HWC (batched to NHWC by the runner).
The same steps serve the Z3D e621 tagger, which was trained with the WD pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lorakiln.dataset.decode import load_rgb, to_rgb

WHITE = (255, 255, 255)


def pad_square(img: Image.Image, fill: tuple[int, int, int] = WHITE) -> Image.Image:
    """Centre the image on a square canvas of its longer side (extra pixel right/bottom)."""
    w, h = img.size
    side = max(w, h)
    if w == h:
        return img
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def prepare(img: Image.Image, size: int) -> np.ndarray:
    """One image as a (size, size, 3) float32 BGR array with values 0-255."""
    img = pad_square(to_rgb(img, WHITE))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    rgb = np.asarray(img, dtype=np.float32)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def load_for_tagger(path: Path, size: int) -> np.ndarray:
    """Decode a file (robustly, see dataset.decode) and prepare it; ItemError if unreadable."""
    return prepare(load_rgb(path, WHITE), size)
