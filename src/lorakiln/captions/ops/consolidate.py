"""Consolidate a set of descriptor tags into one new tag (seed 003: red_shirt, crop_top, ... -> roxanneshirt)."""

from __future__ import annotations

from typing import Literal, Sequence

from lorakiln.captions.model import dedupe, normalize_tag, tag_key

Mode = Literal["any", "all"]


def consolidate(tags: Sequence[str], group: Sequence[str], into: str, mode: Mode = "any") -> list[str]:
    """If the image has any (or all) of `group`, drop them and put `into` where the first one was."""
    keys = {tag_key(g) for g in group}
    present = keys & {tag_key(t) for t in tags}
    if not present or (mode == "all" and present != keys):
        return list(tags)
    new = normalize_tag(into)
    out: list[str] = []
    for t in tags:
        if tag_key(t) in keys:
            if new not in out:
                out.append(new)
        else:
            out.append(t)
    return dedupe(out)
