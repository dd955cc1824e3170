"""A hand-made image descriptor: colour, layout and texture statistics (numpy + Pillow only).

Used for style bleed (how far a LoRA's picture moved from the base model's on the same seed)
and as the character-similarity fallback when neither CCIP nor a tagger is available. It is
deliberately simple and documented, so its numbers can be read: it sees palettes, where colour
sits in the frame and how flat or busy the picture is, not who the character is.

    colour   HSV histogram, 8 hue x 3 saturation x 3 value bins, square-rooted (Hellinger)
    layout   the mean RGB of a 4x4 grid of the picture, centred on the picture's mean
    texture  histogram of gradient magnitudes in 8 bins (flat colour fills the first bins)

Each part is L2-normalised and weighted (colour 1, layout 1, texture 0.5) before the whole
vector is normalised again; similarity is the cosine, difference 1 - cosine.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 64
VERSION = "descriptor-v1"
_GRAD_EDGES = np.array([0, 2, 4, 8, 16, 32, 64, 128, np.inf], dtype=np.float32)
_WEIGHTS = (1.0, 1.0, 0.5)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def colour_histogram(img: Image.Image) -> np.ndarray:
    hsv = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR).convert("HSV"),
                     dtype=np.int32)
    h = hsv[..., 0] * 8 // 256
    s = hsv[..., 1] * 3 // 256
    v = hsv[..., 2] * 3 // 256
    idx = (h * 9 + s * 3 + v).ravel()
    hist = np.bincount(idx, minlength=72).astype(np.float32)
    return np.sqrt(hist / hist.sum())


def layout(img: Image.Image) -> np.ndarray:
    small = np.asarray(img.convert("RGB").resize((4, 4), Image.Resampling.BOX), dtype=np.float32) / 255.0
    return (small - small.reshape(-1, 3).mean(axis=0)).ravel()


def gradient_energy(arr: np.ndarray) -> np.ndarray:
    """Per-pixel gradient magnitude of a grey HxW array (0-255 scale)."""
    gx = np.abs(np.diff(arr, axis=1))[:-1, :]
    gy = np.abs(np.diff(arr, axis=0))[:, :-1]
    return np.sqrt(gx * gx + gy * gy)


def texture(img: Image.Image) -> np.ndarray:
    grey = np.asarray(img.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    hist, _ = np.histogram(gradient_energy(grey), bins=_GRAD_EDGES)
    return hist.astype(np.float32) / max(1, hist.sum())


def describe(img: Image.Image) -> np.ndarray:
    parts = [colour_histogram(img), layout(img), texture(img)]
    return _unit(np.concatenate([w * _unit(p) for w, p in zip(_WEIGHTS, parts)])).astype(np.float32)


def border_energy(img: Image.Image, frame: float = 0.2) -> float:
    """Mean gradient magnitude in the outer `frame` of the picture, where the background usually is:
    a flat-coloured background scores near 0, a detailed one high."""
    grey = np.asarray(img.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    g = gradient_energy(grey)
    k = max(1, int(round(g.shape[0] * frame)))
    mask = np.ones_like(g, dtype=bool)
    mask[k:-k, k:-k] = False
    return float(g[mask].mean())


THUMB = 32  # side of the pixel thumbnail kept for paired picture-to-picture differences


def thumbnail(img: Image.Image, size: int = THUMB) -> np.ndarray:
    """The picture box-averaged to size x size RGB (uint8): enough to tell whether two pictures of
    the same seed differ at all, small enough to keep beside every picture."""
    return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def encode_thumbnail(thumb: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.ascontiguousarray(thumb, dtype=np.uint8).tobytes()).decode("ascii")


def decode_thumbnail(text: str, size: int = THUMB) -> np.ndarray | None:
    import base64
    import binascii

    try:
        raw = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    except (binascii.Error, ValueError):
        return None
    return raw.reshape(size, size, 3) if raw.size == size * size * 3 else None


def pixel_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails on a 0..1 scale (1/255 = one grey level)."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


def cosine_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity for every pair of rows of a [n, d] and b [m, d]."""
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - an @ bn.T
