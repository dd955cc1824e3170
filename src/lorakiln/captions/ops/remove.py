"""Remove tags by exact name, glob, regular expression, category or a named blacklist."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping, Sequence

from lorakiln.captions.model import tag_key
from lorakiln.core.errors import KilnError

BLACKLIST_FILE = "blacklists.toml"


@dataclass(frozen=True)
class Blacklist:
    name: str
    description: str
    tags: frozenset[str]


@lru_cache(maxsize=1)
def blacklist_presets() -> dict[str, Blacklist]:
    """The bundled named blacklists (captions/blacklists.toml); `include` pulls in other lists."""
    doc = tomllib.loads((resources.files("lorakiln.captions") / BLACKLIST_FILE).read_text(encoding="utf-8"))
    raw = doc["presets"]

    def expand(name: str, seen: tuple[str, ...] = ()) -> set[str]:
        if name in seen:
            raise KilnError(f"{BLACKLIST_FILE}: preset {name!r} includes itself")
        p = raw[name]
        out = {tag_key(t) for t in p.get("tags", [])}
        for inc in p.get("include", []):
            out |= expand(inc, seen + (name,))
        return out

    return {n: Blacklist(n, str(p.get("description", "")), frozenset(expand(n))) for n, p in raw.items()}


@dataclass(frozen=True)
class TagMatcher:
    exact: frozenset[str] = frozenset()
    globs: tuple[str, ...] = ()
    regexes: tuple[re.Pattern, ...] = ()
    categories: frozenset[str] = frozenset()

    def __call__(self, tag: str, category: str | None = None) -> bool:
        k = tag_key(tag)
        return (
            k in self.exact
            or (category is not None and category in self.categories)
            or any(fnmatch.fnmatchcase(k, g) for g in self.globs)
            or any(r.fullmatch(k) for r in self.regexes)
        )


def build_matcher(
    tags: Iterable[str] = (),
    globs: Iterable[str] = (),
    regexes: Iterable[str] = (),
    categories: Iterable[str] = (),
    presets: Iterable[str] = (),
) -> TagMatcher:
    """A matcher from the user's choices; unknown presets and bad regexes are clear errors."""
    exact = {tag_key(t) for t in tags}
    known = blacklist_presets()
    for p in presets:
        if p not in known:
            raise KilnError(f"unknown blacklist preset {p!r}; known: {', '.join(sorted(known))}")
        exact |= known[p].tags
    compiled = []
    for r in regexes:
        try:
            compiled.append(re.compile(r, re.IGNORECASE))
        except re.error as e:
            raise KilnError(f"--regex {r!r} is not a valid regular expression: {e}") from None
    m = TagMatcher(frozenset(exact), tuple(tag_key(g) for g in globs), tuple(compiled), frozenset(categories))
    if not (m.exact or m.globs or m.regexes or m.categories):
        raise KilnError("nothing to remove: give tags, --glob, --regex, --category or --preset")
    return m


def remove_tags(tags: Sequence[str], matcher: TagMatcher, categories: Mapping[str, str] | None = None) -> list[str]:
    """Tags that the matcher does not match; `categories` maps tag keys to their category."""
    categories = categories or {}
    return [t for t in tags if not matcher(t, categories.get(tag_key(t)))]
