"""Near-duplicate candidate search over perceptual hashes, vectorised with numpy.

Hashes are rows of uint64 words. Pairs are found block by block over the upper triangle of
the distance matrix (XOR + popcount), so 10,000 hashes take ~50 M popcounts in C rather than
a Python loop over all pairs, and memory stays bounded by the block size.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_MASK = (1 << 64) - 1
_BYTE_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hex_to_words(hexes: Sequence[str]) -> np.ndarray:
    """Hex hash strings (all the same length) -> (n, words) uint64 array."""
    if not hexes:
        return np.zeros((0, 1), dtype=np.uint64)
    words = max(1, -(-len(hexes[0]) * 4 // 64))
    out = np.zeros((len(hexes), words), dtype=np.uint64)
    for i, h in enumerate(hexes):
        v = int(h, 16)
        for w in range(words):
            out[i, w] = (v >> (64 * w)) & _MASK
    return out


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element (numpy >= 2 has a native kernel; older gets a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    b = x[..., None].view(np.uint8)
    return _BYTE_POP[b].sum(axis=-1, dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between broadcastable (..., words) arrays."""
    return popcount(np.bitwise_xor(a, b)).sum(axis=-1, dtype=np.int32)


def near_pairs(
    hashes: np.ndarray,
    threshold: int,
    aspects: np.ndarray | None = None,
    aspect_tolerance: float | None = None,
    block_elems: int = 1 << 18,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j with distance <= threshold (and aspect ratios within tolerance): (i, j, d).

    Blocks of rows are compared with the columns from their first row on; the few pairs within
    the threshold are then cut to i < j and to the aspect gate, so the full-size passes are
    only XOR, popcount and compare. Small blocks stay in cache (measured fastest near 2^18).
    """
    n = len(hashes)
    rows = max(1, min(n, block_elems // max(1, n)))
    out_i, out_j, out_d = [], [], []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d = _block_distances(hashes, start, stop)  # (rows, n - start): columns j >= start
        flat = np.flatnonzero(d <= threshold)  # 1-D: ~15x faster than 2-D np.nonzero here
        bi, bj = np.divmod(flat, d.shape[1])
        upper = bj > bi  # rows and columns both start at `start`, so j > i is bj > bi
        bi, bj = bi[upper], bj[upper]
        out_i.append(bi + start)
        out_j.append(bj + start)
        out_d.append(d[bi, bj].astype(np.int32))
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty.astype(np.int32)
    i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
    if aspects is not None and aspect_tolerance is not None:
        log_aspect = np.log(np.asarray(aspects, dtype=np.float64))
        ok = np.abs(log_aspect[i] - log_aspect[j]) <= np.log1p(aspect_tolerance)
        i, j, d = i[ok], j[ok], d[ok]
    return i, j, d


def _block_distances(hashes: np.ndarray, start: int, stop: int) -> np.ndarray:
    if hashes.shape[1] == 1:  # the common 64-bit case: skip the words axis
        col = hashes[:, 0]
        return popcount(np.bitwise_xor(col[start:stop, None], col[None, start:]))  # uint8
    return hamming(hashes[start:stop, None, :], hashes[None, start:, :])
