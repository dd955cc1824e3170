"""Duplicates still kept: the same picture twice is trained twice as hard (seed 001 runs
dupeGuru, then still looks through the dataset by hand)."""

from __future__ import annotations

import numpy as np

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding

DEFAULT_DISTANCE = 8
_BLOCK = 512


@RULES.register("duplicates")
def duplicates(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    limit = DEFAULT_DISTANCE if cfg.duplicate_distance is None else cfg.duplicate_distance
    out = []
    exact = _exact_pairs(ds)
    if exact:
        out.append(Finding("duplicates", "warning", f"{len(exact)} pairs of identical files are both kept",
                           sorted({i for p in exact for i in p}), "`kiln dedupe` keeps one of each",
                           {"pairs": [list(p) for p in exact]}))
    hashed = [it for it in ds.items if it.phash]
    if not hashed:
        out.append(Finding("duplicates", "info", "no perceptual hashes recorded: near-duplicates not checked",
                           [], "`kiln dedupe` computes them (and drops near-duplicates)"))
        return out
    seen = {frozenset(p) for p in exact}
    near = [(hashed[a].id, hashed[b].id, d) for a, b, d in near_pairs([it.phash for it in hashed], limit)]
    near = [p for p in near if frozenset(p[:2]) not in seen]
    if near:
        out.append(Finding(
            "duplicates", "warning",
            f"{len(near)} pairs of near-duplicates kept (pHash distance <= {limit}): "
            + ", ".join(f"{a}~{b} ({d})" for a, b, d in near[:5]) + (" ..." if len(near) > 5 else ""),
            sorted({i for a, b, _ in near for i in (a, b)}),
            f"`kiln dedupe --threshold {limit}` keeps the best of each group",
            {"pairs": [[a, b, d] for a, b, d in near], "distance": limit}))
    return out


def _exact_pairs(ds: Dataset) -> list[tuple[str, str]]:
    first: dict[str, str] = {}
    pairs = []
    for it in ds.items:
        if it.sha256:
            if it.sha256 in first:
                pairs.append((first[it.sha256], it.id))
            else:
                first[it.sha256] = it.id
    return pairs


def near_pairs(hashes: list[str], limit: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for i < j with Hamming distance <= limit, over hex hashes of equal length.

    Vectorised in blocks (XOR + popcount on 64-bit words), so 10,000 hashes take well under a
    second; hashes of another length than the first are not compared.
    """
    if not hashes:
        return []
    width = len(hashes[0])
    idx = [i for i, h in enumerate(hashes) if len(h) == width]
    words = -(-width // 16)
    arr = np.array([[int(h.rjust(words * 16, "0")[w * 16:(w + 1) * 16], 16) for w in range(words)]
                    for h in (hashes[i] for i in idx)], dtype=np.uint64)
    out = []
    for start in range(0, len(arr), _BLOCK):
        block, rest = arr[start:start + _BLOCK], arr[start:]  # only pairs i < j: the upper triangle
        dist = np.bitwise_count(block[:, None, :] ^ rest[None, :, :])
        dist = dist[..., 0] if words == 1 else dist.sum(axis=-1, dtype=np.int32)
        a, b = np.nonzero(dist <= limit)
        keep = b > a
        out += [(idx[start + int(i)], idx[start + int(j)], int(dist[i, j])) for i, j in zip(a[keep], b[keep])]
    return out
