"""Drop a tag when a more specific tag says the same and more (long_hair + very_long_hair).

"More specific" is decided on whole words: `long_hair` is a run of words inside
`very_long_hair`, but `bow` is not a word of `elbow_gloves` and `tail` is not a word of
`ponytail`, so those stay (imgutils' substring test drops them; reference/datasets.md §2.5).
A qualifier in parentheses does not count as words: `star` survives `kafka_(honkai:_star_rail)`.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from lorakiln.captions.model import tag_key

_QUALIFIER_RE = re.compile(r"_\(.*\)$")


def _words(tag: str) -> tuple[str, ...]:
    return tuple(w for w in _QUALIFIER_RE.sub("", tag_key(tag)).split("_") if w)


def _proper_runs(words: tuple[str, ...]) -> set[tuple[str, ...]]:
    n = len(words)
    return {words[i:j] for i in range(n) for j in range(i + 1, n + 1) if j - i < n}


def drop_overlap(tags: Sequence[str], exceptions: Iterable[str] = ()) -> list[str]:
    """Keep the more specific of two overlapping tags; tags in `exceptions` always stay."""
    keep = {tag_key(t) for t in exceptions}
    runs: set[tuple[str, ...]] = set()
    for t in tags:
        runs |= _proper_runs(_words(t))
        if "_(" in t:  # the bare name is a less specific form of name_(qualifier)
            runs.add(_words(t))
    return [t for t in tags if tag_key(t) in keep or "_(" in t or _words(t) not in runs]
