"""Tiled super-resolution: run an upscaling network on overlapping tiles and join them without seams.

Geometry. `tile` is the largest input the network sees. The picture is cut into cores of
nearly equal size (at most `tile - 2 * overlap` each way, so no thin last tile); each core is
run with `overlap` pixels of real picture around it as context (less at the picture's
edges, where the untiled run has no picture either).

Joining. Two windows, both exact for a network whose receptive field reaches no further than
the context they rely on:
- "crop": each tile writes only its core's output. Exact when the receptive field radius is at
  most `overlap` input pixels; beyond that the two sides of a border can differ and the border
  shows as a hard line.
- "feather" (default): across each core border, the two tiles are blended with linear
  weights over a band `overlap` input pixels wide centred on the border (weights sum to 1).
  Each tile keeps at least `overlap / 2` pixels of context inside its band, so the join is
  exact for receptive fields up to that; for larger ones (deep ESRGANs, transformers) the
  difference left is spread over the band instead of stepping at one line, which is what makes
  seams invisible in practice (ComfyUI's tiled upscaler feathers for the same reason; imgutils
  averages overlaps with equal weights, which keeps a step at each tile edge).

Memory. Tiles go through the network one row of tiles at a time, in batches of tiles of the same
shape; the float accumulator holds one row of tiles (with its overlap), and rows that no later
tile touches are turned into 8-bit output at once. Memory grows with the picture's width and the
tile size, never with its height or the network's full-picture activations.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np

from lorakiln.core.errors import KilnError

BLENDS = ("feather", "crop")
Run = Callable[[np.ndarray], np.ndarray]  # (n, 3, h, w) float32 0-1 -> (n, 3, h*s, w*s)
Progress = Callable[[int, int], None]     # (tiles done, tiles in all)


def check_tiling(tile: int, overlap: int, blend: str) -> None:
    if blend not in BLENDS:
        raise KilnError(f"unknown tile blend {blend!r}: use one of {', '.join(BLENDS)}")
    if overlap < 0 or tile < 1:
        raise KilnError(f"tile {tile} and overlap {overlap}: both must be positive")
    least = 4 * overlap if blend == "feather" else 2 * overlap + 1
    if tile < least:  # feather: cores (at least half of tile - 2 * overlap) must hold both bands' halves
        raise KilnError(f"tile {tile} is too small for overlap {overlap}: with the {blend} blend it must be "
                        f"at least {least}")


def spans(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Cores [a, b) covering 0..n: as few as fit `tile - 2 * overlap`, sizes differing by at most 1."""
    core = tile - 2 * overlap
    if n <= tile:
        return [(0, n)]
    k = math.ceil(n / core)
    edges = [round(i * n / k) for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:]))


def window(core: tuple[int, int], ext: tuple[int, int], n: int, scale: int, overlap: int,
           blend: str) -> np.ndarray:
    """One tile's weights along one axis, for its output pixels ext[0]*s .. ext[1]*s."""
    a, b = core
    pos = np.arange(ext[0] * scale, ext[1] * scale, dtype=np.float64) + 0.5
    if blend == "crop" or overlap == 0:
        return ((pos >= a * scale) & (pos < b * scale)).astype(np.float32)
    band = overlap * scale  # output pixels; centred on the border
    rise = np.ones_like(pos) if a == 0 else np.clip((pos - (a * scale - band / 2)) / band, 0.0, 1.0)
    fall = np.ones_like(pos) if b == n else np.clip(((b * scale + band / 2) - pos) / band, 0.0, 1.0)
    return (rise * fall).astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(spans(height, tile, overlap)) * len(spans(width, tile, overlap))


def upscale_tiled(img: np.ndarray, run: Run, scale: int, tile: int = 512, overlap: int = 32,
                  batch: int = 4, blend: str = "feather", progress: Progress | None = None,
                  out_dtype: type = np.uint8) -> np.ndarray:
    """(H, W, 3) float32 RGB 0-1 -> (H*s, W*s, 3) uint8 (or float32 with out_dtype=np.float32)."""
    check_tiling(tile, overlap, blend)
    h, w = img.shape[:2]
    rows, cols = spans(h, tile, overlap), spans(w, tile, overlap)
    out = np.empty((h * scale, w * scale, 3), dtype=out_dtype)
    finish = to_uint8 if out_dtype == np.uint8 else (lambda x: x)
    col_ext = [_extend(c, w, overlap) for c in cols]
    col_win = [window(c, e, w, scale, overlap, blend) for c, e in zip(cols, col_ext)]
    total, done = len(rows) * len(cols), 0
    acc, top = None, 0
    for row in rows:
        ea, eb = _extend(row, h, overlap)
        row_win = window(row, (ea, eb), h, scale, overlap, blend)[:, None, None]
        fresh = np.zeros(((eb - ea) * scale, w * scale, 3), dtype=np.float32)
        if acc is not None:  # rows above this tile row's reach are final
            k = ea * scale - top
            out[top:ea * scale] = finish(acc[:k])
            fresh[:acc.shape[0] - k] = acc[k:]
        acc, top = fresh, ea * scale
        tiles = [img[ea:eb, x0:x1] for x0, x1 in col_ext]
        for idx, ys in _run_grouped(tiles, run, batch, scale):
            x0, x1 = col_ext[idx]
            acc[:, x0 * scale:x1 * scale] += ys * row_win * col_win[idx][None, :, None]
            done += 1
            if progress is not None:
                progress(done, total)
    out[top:] = finish(acc)
    return out


def _extend(core: tuple[int, int], n: int, overlap: int) -> tuple[int, int]:
    return max(0, core[0] - overlap), min(n, core[1] + overlap)


def _run_grouped(tiles: Sequence[np.ndarray], run: Run, batch: int,
                 scale: int) -> Iterator[tuple[int, np.ndarray]]:
    """(tile index, (h*s, w*s, 3) output) for each tile, batching tiles of the same shape."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, t in enumerate(tiles):
        groups.setdefault(t.shape, []).append(i)
    for shape, idx in groups.items():
        for i in range(0, len(idx), max(1, batch)):
            part = idx[i:i + max(1, batch)]
            x = np.ascontiguousarray(np.stack([tiles[j] for j in part]).transpose(0, 3, 1, 2))
            y = run(x)
            want = (len(part), 3, shape[0] * scale, shape[1] * scale)
            if y.shape != want:
                raise KilnError(f"the upscaler returned {tuple(y.shape)} for tiles {tuple(x.shape)}; expected {want}")
            for j, out in zip(part, y):
                yield j, out.transpose(1, 2, 0)
