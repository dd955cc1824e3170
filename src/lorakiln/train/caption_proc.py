"""Caption processing at training time, in kohya's order (reference/trainers.md §1.3).

prefix/suffix -> whole-caption dropout -> one line (+ {a|b} wildcards) -> fixed head / shuffled
middle / fixed tail (keep_tokens_separator, else the first keep_tokens tags) -> shuffle ->
per-tag dropout -> secondary-separator groups rejoined. Pure functions; the RNG is passed in.
`opts` is a SubsetOptions (config/train.py) whose keep_tokens has been resolved to an int.
"""

from __future__ import annotations

import random
import re
from collections import Counter

_WILDCARD = re.compile(r"\{([^{}]*)\}")
_OPEN, _CLOSE = "\x00", "\x01"


def join_affix(prefix: str, text: str, suffix: str, sep: str = ",") -> str:
    """prefix + caption + suffix with one separator between non-empty parts."""
    parts = [p.strip().strip(sep).strip() for p in (prefix, text, suffix)]
    parts = [p for p in parts if p]
    return f"{sep} ".join(parts)


def is_dropped(rate: float, every_n_epochs: int, epoch: int, rng: random.Random) -> bool:
    """Whole-caption dropout: at random with `rate`, or every N-th epoch (epochs count from 1)."""
    if rate > 0 and rng.random() < rate:
        return True
    return every_n_epochs > 0 and epoch % every_n_epochs == 0


def expand_wildcards(text: str, rng: random.Random) -> str:
    """`{a|b|c}` -> one of a, b, c; `{{` and `}}` stay as literal braces."""
    text = text.replace("{{", _OPEN).replace("}}", _CLOSE)
    text = _WILDCARD.sub(lambda m: rng.choice(m.group(1).split("|")), text)
    return text.replace(_OPEN, "{").replace(_CLOSE, "}")


def pick_line(text: str, wildcard: bool, rng: random.Random) -> str:
    """With wildcards: a random non-empty line, expanded; otherwise the first line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    if not wildcard:
        return lines[0]
    return expand_wildcards(rng.choice(lines), rng)


def split_tags(text: str, sep: str = ",") -> list[str]:
    return [t.strip() for t in text.split(sep) if t.strip()]


def fixed_and_flexible(text: str, sep: str, keep_tokens: int, keep_sep: str) -> tuple[list, list, list]:
    """(fixed head, shuffle-able middle, fixed tail) of a caption."""
    if keep_sep and keep_sep in text:
        head, rest = text.split(keep_sep, 1)
        middle, tail = rest.split(keep_sep, 1) if keep_sep in rest else (rest, "")
        return split_tags(head, sep), split_tags(middle, sep), split_tags(tail.replace(keep_sep, sep), sep)
    tags = split_tags(text, sep)
    return tags[:keep_tokens], tags[keep_tokens:], []


def drop_tags(tags: list[str], rate: float, rng: random.Random) -> list[str]:
    if rate <= 0:
        return tags
    return [t for t in tags if rng.random() >= rate]


def process_caption(text: str, opts, rng: random.Random, epoch: int = 1) -> str:
    """The caption the model sees this time for a raw caption file's text."""
    sep = opts.caption_separator
    text = join_affix(opts.caption_prefix, text, opts.caption_suffix, sep) if (
        opts.caption_prefix or opts.caption_suffix) else text
    if is_dropped(opts.caption_dropout_rate, opts.caption_dropout_every_n_epochs, epoch, rng):
        return ""
    line = pick_line(text, opts.enable_wildcard, rng)
    head, middle, tail = fixed_and_flexible(line, sep, opts.keep_tokens or 0, opts.keep_tokens_separator)
    if opts.shuffle_caption:
        rng.shuffle(middle)
    middle = drop_tags(middle, opts.caption_tag_dropout_rate, rng)
    caption = f"{sep} ".join(head + middle + tail)
    if opts.secondary_separator:
        caption = caption.replace(opts.secondary_separator, f"{sep} ")
    return caption


def is_static(opts) -> list[str]:
    """Reasons the caption of an image can change between epochs (empty list = static)."""
    reasons = []
    if opts.shuffle_caption:
        reasons.append("shuffle_caption")
    if opts.caption_dropout_rate > 0 or opts.caption_dropout_every_n_epochs > 0:
        reasons.append("caption dropout")
    if opts.caption_tag_dropout_rate > 0:
        reasons.append("caption_tag_dropout_rate")
    if opts.enable_wildcard:
        reasons.append("enable_wildcard")
    return reasons


def tag_counts(texts: list[str], sep: str = ",", keep_sep: str = "") -> Counter:
    """kohya's ss_tag_frequency for one folder: comma pieces of every line, stripped, lower-cased."""
    counts: Counter = Counter()
    for text in texts:
        for line in text.splitlines():
            if keep_sep:
                line = line.replace(keep_sep, sep)
            for tag in split_tags(line, sep):
                counts[tag.lower()] += 1
    return counts
