"""Tag list <-> caption text.

Inside lorakiln a caption is a list of canonical tags: booru spelling with underscores and
no A1111 escapes (`kafka_(honkai:_star_rail)`). Text is made only when a caption is written
(`format_caption`) and turned back into tags when read (`parse_caption`), so escaping happens
exactly once and `parse_caption(format_caption(tags)) == tags` for any tag list.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Mapping

_ESCAPABLE = "\\()[]"
_UNESCAPE_RE = re.compile(r"\\([\\()\[\]])")
_SPACES_RE = re.compile(r"\s+")
_UNDERSCORES_RE = re.compile(r"_+")
# kaomoji whose underscore is part of the face (kohya keeps tags of <= 3 characters as they are)
_KAOMOJI_MAX = 3


def unescape(text: str) -> str:
    r"""Undo A1111 escapes: `\(` -> `(`, `\\` -> `\`; a lone backslash stays."""
    return _UNESCAPE_RE.sub(r"\1", text)


def escape(text: str) -> str:
    r"""A1111 prompt escaping of `\ ( ) [ ]`, applied to an unescaped tag."""
    return "".join("\\" + c if c in _ESCAPABLE else c for c in text)


def _wordy(tag: str) -> bool:
    """A tag made of words (not a kaomoji such as ^_^ or >_<): its underscores are word breaks."""
    return len(tag) > _KAOMOJI_MAX and any(c.isalnum() for c in tag)


@lru_cache(maxsize=1 << 16)  # datasets repeat the same few thousand tags
def normalize_tag(tag: str) -> str:
    """The canonical form of one tag as users or files write it: unescaped, underscores, trimmed."""
    t = _SPACES_RE.sub(" ", unescape(tag).strip()).replace(" ", "_")
    return _UNDERSCORES_RE.sub("_", t).strip("_") if _wordy(t) else t


@lru_cache(maxsize=1 << 16)
def tag_key(tag: str) -> str:
    """Comparison key: canonical and lower-case (booru tags are case-insensitive)."""
    return normalize_tag(tag).lower()


def dedupe(tags: Iterable[str]) -> list[str]:
    """Keep the first occurrence of each tag (case-insensitive), preserving order."""
    seen: set[str] = set()
    out: list[str] = []
    for t in tags:
        k = tag_key(t)
        if k and k not in seen:
            seen.add(k)
            out.append(t)
    return out


def normalize_tags(tags: Iterable[str]) -> list[str]:
    return dedupe(normalize_tag(t) for t in tags if t and t.strip())


def parse_caption(text: str, separator: str = ",") -> list[str]:
    """Tags of a caption file or a typed caption: split on the separator and newlines."""
    sep = separator.strip() or ","
    parts: list[str] = []
    for line in text.splitlines():
        parts.extend(_split_unescaped(line, sep))
    return normalize_tags(parts)


def _split_unescaped(line: str, sep: str) -> list[str]:
    r"""Split on `sep` except where it is escaped (`\,` is unusual but must not split)."""
    out, cur, i = [], [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            cur.append(line[i:i + 2])
            i += 2
        elif line.startswith(sep, i):
            out.append("".join(cur))
            cur = []
            i += len(sep)
        else:
            cur.append(line[i])
            i += 1
    out.append("".join(cur))
    return out


def render_tag(tag: str, underscores: bool = False, escape_parens: bool = True) -> str:
    """One canonical tag as written in a caption file."""
    t = tag
    if not underscores and _wordy(t):
        t = t.replace("_", " ")
    return escape(t) if escape_parens else t


def format_caption(
    tags: Iterable[str],
    *,
    underscores: bool = False,
    escape_parens: bool = True,
    separator: str = ", ",
    verbatim: Mapping[str, str] | None = None,
) -> str:
    """Caption text; `verbatim` maps tag keys (trigger words) to the exact text to write for them."""
    verbatim = verbatim or {}
    out = []
    for t in tags:
        v = verbatim.get(tag_key(t))
        out.append(render_tag(t, underscores, escape_parens) if v is None else (escape(v) if escape_parens else v))
    return separator.join(out)


def verbatim_map(words: Iterable[str]) -> dict[str, str]:
    """Trigger words and class tokens are written as the user typed them (no _/space change)."""
    return {tag_key(w): unescape(w.strip()) for w in words if w and w.strip()}
