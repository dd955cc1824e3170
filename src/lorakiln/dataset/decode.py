"""Robust image decoding: one function every stage uses, with a clear reason on failure.

Handles EXIF orientation, CMYK/P/LA/I;16 modes, transparency composited on a background,
truncated files and decompression bombs (Pillow's pixel limit). Failures raise ItemError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lorakiln.core.errors import ItemError

MAX_PIXELS = 16384 * 16384 // 2  # larger than any booru original; smaller than a bomb


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    frames: int
    mode: str


def probe(path: Path) -> ImageInfo:
    """Size, format and frame count from the header, without decoding pixels."""
    try:
        with _open(path) as im:
            w, h = _oriented_size(im)
            return ImageInfo(w, h, (im.format or "").lower(), getattr(im, "n_frames", 1), im.mode)
    except ItemError:
        raise
    except Exception as e:  # pragma: no cover - Pillow raises many types
        raise ItemError(str(path), f"unreadable image: {e}") from None


def load_rgb(path: Path, background: tuple[int, int, int] = (255, 255, 255),
             max_side: int | None = None) -> Image.Image:
    """Fully decode to an upright RGB image; alpha is composited on `background`.

    With `max_side`, JPEGs are decoded at a reduced scale (Image.draft) and the result is
    downscaled so its longer side is at most `max_side`: hashing and statistics need no more."""
    try:
        with _open(path) as im:
            if max_side is not None:
                im.draft("RGB", (max_side, max_side))
            im.load()
            im = ImageOps.exif_transpose(im)
            im = to_rgb(im, background)
            if max_side is not None and max(im.size) > max_side:
                im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            return im
    except ItemError:
        raise
    except OSError as e:
        msg = str(e)
        if "truncated" in msg.lower():
            raise ItemError(str(path), "truncated file: the download or copy is incomplete") from None
        raise ItemError(str(path), f"cannot decode: {msg}") from None
    except Exception as e:  # pragma: no cover
        raise ItemError(str(path), f"cannot decode: {e}") from None


def to_rgb(im: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray((arr / top * 255.0).clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (*background, 255))
        bg.alpha_composite(im)
        return bg.convert("RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")  # CMYK, L, YCbCr, F, 1
    return im


def _open(path: Path) -> Image.Image:
    """Open lazily; refuse decompression bombs by the header's pixel count. The check is ours
    (thread-safe: Pillow's between-limits warning would need process-wide warning filters);
    Pillow's own error for far larger images is turned into the same message."""
    try:
        im = Image.open(path)
    except Image.DecompressionBombError:
        raise ItemError(str(path), f"decompression bomb: more than {MAX_PIXELS} pixels") from None
    except UnidentifiedImageError:
        raise ItemError(str(path), "not an image (or an unsupported format)") from None
    except FileNotFoundError:
        raise ItemError(str(path), "file is missing") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ItemError(str(path), f"decompression bomb: {w}x{h} is more than {MAX_PIXELS} pixels")
    return im


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    w, h = im.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
