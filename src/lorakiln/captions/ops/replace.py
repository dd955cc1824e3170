"""Replace one tag by another, in place (seed 003's find-and-replace of whole tags)."""

from __future__ import annotations

from typing import Sequence

from lorakiln.captions.model import dedupe, normalize_tag, tag_key


def replace_tag(tags: Sequence[str], old: str, new: str) -> list[str]:
    """Whole-tag replacement keeping the position; if `new` is already there it is not repeated."""
    old_k, new_t = tag_key(old), normalize_tag(new)
    if old_k not in {tag_key(t) for t in tags}:
        return list(tags)
    return dedupe(new_t if tag_key(t) == old_k else t for t in tags)
