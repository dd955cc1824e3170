"""Dedupe core: exact duplicates by file hash, near-duplicates by perceptual hash, grouped with
union-find; in each group the best image is kept: one the filters will keep (a colour picture
over its greyscale copy), then resolution, then score.

Pure: values in, decisions out. The service decodes, hashes and writes the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.phash_index import hamming, hex_to_words, near_pairs

REASON = "duplicate"


@dataclass(frozen=True)
class Candidate:
    """What dedupe needs to know about one kept image."""

    id: str
    md5: str | None = None
    sha256: str | None = None
    phash: str | None = None
    width: int | None = None
    height: int | None = None
    score: int | None = None
    survives: bool = True  # no per-image filter would drop it
    colour: bool = True  # not greyscale or a one-hue tint

    @classmethod
    def of(cls, r: ImageRecord, phash: str | None, survives: bool = True, colour: bool = True) -> "Candidate":
        return cls(r.id, r.md5, r.sha256, phash, r.width, r.height, r.score, survives, colour)


@dataclass(frozen=True)
class Decision:
    drop: str
    keep: str
    kind: Literal["exact", "near"]
    distance: int | None = None  # Hamming distance drop <-> keep, when both have hashes
    detail: str = ""

    @property
    def reason(self) -> str:
        return f"{REASON}: {self.detail}"


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            out.setdefault(self.find(i), []).append(i)
        return [g for g in out.values() if len(g) > 1]


def dedupe(items: Sequence[Candidate], cfg: DedupeConfig, hash_name: str = "phash") -> list[Decision]:
    """One decision per image to drop; images not mentioned stay."""
    return decide(items, find_groups(items, cfg), hash_name)


def find_groups(items: Sequence[Candidate], cfg: DedupeConfig) -> list[list[int]]:
    """Indices of the images that are duplicates of each other, one list per group."""
    uf = UnionFind(len(items))
    if cfg.exact:
        _union_exact(items, uf)
    if cfg.near:
        _union_near(items, uf, cfg)
    return uf.groups()


def decide(items: Sequence[Candidate], groups: Sequence[Sequence[int]], hash_name: str = "phash") -> list[Decision]:
    """Keep the best of each group, drop the others in its favour."""
    decisions = []
    for group in groups:
        best = max(group, key=lambda i: quality_key(items[i], i))
        decisions += [_decide(items[i], items[best], hash_name) for i in sorted(group) if i != best]
    return decisions


def quality_key(c: Candidate, order: int) -> tuple:
    """Larger is better: survives the filters, colour, pixels, then score, then the earlier record."""
    pixels = (c.width or 0) * (c.height or 0)
    return (c.survives, c.colour, pixels, c.score if c.score is not None else float("-inf"), -order)


def _union_exact(items: Sequence[Candidate], uf: UnionFind) -> None:
    first: dict[tuple[str, str], int] = {}
    for i, c in enumerate(items):
        for key in (("md5", c.md5), ("sha256", c.sha256)):
            if key[1]:
                uf.union(first.setdefault(key, i), i)


def _union_near(items: Sequence[Candidate], uf: UnionFind, cfg: DedupeConfig) -> None:
    idx = [i for i, c in enumerate(items) if c.phash]
    if len(idx) < 2:
        return
    lengths = {len(items[i].phash) for i in idx}
    if len(lengths) > 1:
        raise KilnError(f"perceptual hashes of different lengths {sorted(lengths)}; rerun `kiln dedupe --force`")
    words = hex_to_words([items[i].phash for i in idx])
    aspects = np.array([_aspect(items[i]) for i in idx])
    ii, jj, _ = near_pairs(words, cfg.threshold, aspects, cfg.aspect_tolerance or None)
    for a, b in zip(ii.tolist(), jj.tolist()):
        uf.union(idx[a], idx[b])


def _aspect(c: Candidate) -> float:
    return (c.width / c.height) if c.width and c.height else 1.0


def _decide(drop: Candidate, keep: Candidate, hash_name: str) -> Decision:
    for name in ("sha256", "md5"):
        if getattr(drop, name) and getattr(drop, name) == getattr(keep, name):
            return Decision(drop.id, keep.id, "exact", 0, f"same file as {keep.id} ({name})")
    d = distance(drop.phash, keep.phash)
    how = f"{hash_name} distance {d} to {keep.id}" if d is not None else f"same group as {keep.id}"
    return Decision(drop.id, keep.id, "near", d, how)


def distance(a: str | None, b: str | None) -> int | None:
    if not a or not b or len(a) != len(b):
        return None
    return int(hamming(hex_to_words([a]), hex_to_words([b]))[0])


# -- groups for --show -----------------------------------------------------------------------
INFO_KEY = "duplicate"  # record.extra: {"kind": "exact" | "near", "distance": int | None}


@dataclass
class Member:
    record: ImageRecord
    kind: str
    distance: int | None


@dataclass
class Group:
    keep: ImageRecord
    dropped: list[Member] = field(default_factory=list)


def is_duplicate_drop(r: ImageRecord) -> bool:
    return r.status == Status.dropped and bool(r.reason) and r.reason.startswith(f"{REASON}:")


def groups_of(records: Sequence[ImageRecord]) -> list[Group]:
    """Kept images with the duplicates dropped in their favour, largest groups first."""
    by_id = {r.id: r for r in records}
    groups: dict[str, Group] = {}
    for r in records:
        keep = by_id.get(r.duplicate_of or "")
        if is_duplicate_drop(r) and keep is not None:
            info = r.extra.get(INFO_KEY) or {}
            member = Member(r, info.get("kind", "?"), info.get("distance"))
            groups.setdefault(keep.id, Group(keep)).dropped.append(member)
    return _sorted(groups)


def groups_of_decisions(decisions: Sequence[Decision], by_id: dict[str, ImageRecord]) -> list[Group]:
    """The same view for decisions not applied yet (--dry-run)."""
    groups: dict[str, Group] = {}
    for d in decisions:
        groups.setdefault(d.keep, Group(by_id[d.keep])).dropped.append(Member(by_id[d.drop], d.kind, d.distance))
    return _sorted(groups)


def _sorted(groups: dict[str, Group]) -> list[Group]:
    return sorted(groups.values(), key=lambda g: (-len(g.dropped), g.keep.id))
