"""Tag frequency over a set of captions ("Calculate frequency", seed 001)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping

from lorakiln.captions.model import tag_key


@dataclass(frozen=True)
class TagCount:
    tag: str
    count: int  # images carrying the tag
    share: float  # count / images


def tag_frequency(captions: Iterable[list[str]]) -> list[TagCount]:
    """Images per tag, most frequent first (ties alphabetical); a tag counts once per image."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    n = 0
    for tags in captions:
        n += 1
        keys = {tag_key(t): t for t in tags}
        counts.update(keys.keys())
        for k, t in keys.items():
            spelling.setdefault(k, t)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [TagCount(spelling[k], c, c / n) for k, c in ordered]


def frequency_csv(rows: Iterable[TagCount], categories: Mapping[str, str] | None = None) -> str:
    """CSV text: tag,count,share,category."""
    categories = categories or {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tag", "count", "share", "category"])
    for r in rows:
        w.writerow([r.tag, r.count, f"{r.share:.4f}", categories.get(tag_key(r.tag), "")])
    return buf.getvalue()
