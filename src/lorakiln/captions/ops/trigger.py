"""Trigger word(s) and class tokens first (kohya's keep_tokens keeps them unshuffled)."""

from __future__ import annotations

from typing import Sequence

from lorakiln.captions.model import dedupe, normalize_tag, tag_key


def put_first(tags: Sequence[str], first: Sequence[str]) -> list[str]:
    """`first` at the start, in order; their other occurrences removed; the rest keeps its order."""
    head = dedupe(normalize_tag(w) for w in first if w.strip())
    keys = {tag_key(t) for t in head}
    return head + [t for t in tags if tag_key(t) not in keys]
