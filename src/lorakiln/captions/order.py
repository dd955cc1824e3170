"""Tag order styles per base model, and the special tags some bases were trained with.

- animagine: `1girl, <trigger/character>, <series>, everything else` then, when asked, the
  quality / rating / year / aesthetic tags of Animagine XL 3.1 (reference/datasets.md §11.2).
- pony: `score_9, score_8_up, ..., source_*, rating_*, <trigger>, ...` (Pony Diffusion V6 XL).
- confidence: trigger first, then by tagger confidence (booru tags count as 1.0).
- e621: trigger first, then by tag category (character, species, ..., general, meta; pikaft).

A style returns the ordered tags and how many leading tags form the fixed head that training
should keep unshuffled (kohya keep_tokens). Special tags are derived from the image's own
data (score percentile in the dataset, rating, date) and are removed before each ordering,
so ordering twice, or switching style, never repeats or mixes them.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from lorakiln.captions.model import dedupe, tag_key
from lorakiln.core.registry import Registry

# -- special tags ----------------------------------------------------------------------
QUALITY = [(0.95, "masterpiece"), (0.85, "best_quality"), (0.75, "great_quality"), (0.50, "good_quality"),
           (0.25, "normal_quality"), (0.10, "low_quality"), (-1.0, "worst_quality")]
YEARS = [(2021, "newest"), (2018, "recent"), (2015, "mid"), (2011, "early"), (-1, "oldest")]
AESTHETIC = [(0.71, "very_aesthetic"), (0.45, "aesthetic"), (0.27, "displeasing"), (-1.0, "very_displeasing")]
ANIMAGINE_RATING = {"g": ["safe"], "s": ["sensitive"], "q": ["nsfw"], "e": ["explicit", "nsfw"]}
PONY_RATING = {"g": "rating_safe", "s": "rating_questionable", "q": "rating_questionable", "e": "rating_explicit"}
E621_RATING = {"g": "safe", "s": "questionable", "q": "questionable", "e": "explicit"}
PONY_SCORE = [(0.90, 9), (0.75, 8), (0.60, 7), (0.45, 6), (0.30, 5), (0.15, 4)]
PONY_SOURCES = ("anime", "furry", "cartoon", "pony")
FURRY_SITES = {"e621", "e926"}

SPECIAL_TAGS = frozenset(
    [t for _, t in QUALITY] + [t for _, t in YEARS] + [t for _, t in AESTHETIC]
    + [t for ts in ANIMAGINE_RATING.values() for t in ts] + list(PONY_RATING.values()) + list(E621_RATING.values())
    + ["score_9"] + [f"score_{n}_up" for n in range(1, 10)] + [f"source_{s}" for s in PONY_SOURCES]
)
# Pony was trained on these exact tokens: their underscores are part of the tag, so they are
# written as they are even when the other tags are written with spaces (`score_9`, not `score 9`)
VERBATIM_TAGS = frozenset(
    ["score_9"] + [f"score_{n}_up" for n in range(1, 10)] + [f"source_{s}" for s in PONY_SOURCES]
    + list(PONY_RATING.values())
)
_COUNT_RE = re.compile(r"^(\d+\+?(girl|boy|other)s?|multiple_(girls|boys|others)|no_humans)$")


def _bin(value: float, table: Sequence[tuple[float, str]]) -> str:
    for lim, tag in table:
        if value > lim:
            return tag
    return table[-1][1]


def quality_tag(percentile: float) -> str:
    return _bin(percentile, QUALITY)


def year_tag(year: int) -> str:
    return next(tag for first, tag in YEARS if year >= first)


def aesthetic_tag(score: float) -> str:
    return _bin(score, AESTHETIC)


def pony_score_tags(percentile: float) -> list[str]:
    """score_9 for the top; score_N_up for every level the image reaches, down to 4."""
    level = next((n for lim, n in PONY_SCORE if percentile > lim), None)
    if level is None:
        return []
    head = ["score_9"] if level == 9 else []
    return head + [f"score_{n}_up" for n in range(min(level, 8), 3, -1)]


def is_count_tag(tag: str) -> bool:
    return bool(_COUNT_RE.match(tag_key(tag)))


# -- per-image facts -----------------------------------------------------------------------
@dataclass(frozen=True)
class TagFacts:
    """What an order style may know about one image besides its tags (all optional)."""

    categories: Mapping[str, str] = field(default_factory=dict)  # tag key -> category
    scores: Mapping[str, float] = field(default_factory=dict)  # tag key -> confidence
    rating: str | None = None  # g / s / q / e
    year: int | None = None
    percentile: float | None = None  # the image's score percentile within the dataset, 0..1
    aesthetic: float | None = None
    site: str | None = None


@dataclass(frozen=True)
class OrderOptions:
    keep_first: tuple[str, ...] = ()  # trigger word(s) and class tokens
    quality_tags: bool = False
    rating_tags: bool = False
    year_tags: bool = False
    aesthetic_tags: bool = False
    score_tags: bool = True
    source_tag: str = "auto"
    category_order: tuple[str, ...] = ("character", "species", "copyright", "artist", "rating", "general", "meta")


OrderStyle = Callable[[list[str], TagFacts, OrderOptions], tuple[list[str], int]]
ORDER_STYLES: Registry[OrderStyle] = Registry("order style")


def order_tags(tags: Sequence[str], style: str, facts: TagFacts, opts: OrderOptions) -> tuple[list[str], int]:
    """(ordered tags, length of the fixed head) for one image."""
    fn = ORDER_STYLES.get(style)
    plain = [t for t in dedupe(tags) if tag_key(t) not in SPECIAL_TAGS]
    return fn(plain, facts, opts)


def _split_keep(tags: list[str], keep_first: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the trigger tags present, in keep_first order; the other tags in their order)."""
    keys = [tag_key(k) for k in keep_first]
    by_key = {tag_key(t): t for t in tags}
    head = [by_key[k] for k in dict.fromkeys(keys) if k in by_key]
    return head, [t for t in tags if tag_key(t) not in set(keys)]


def _take(tags: list[str], pred) -> tuple[list[str], list[str]]:
    """(tags where pred holds, the others), each in order."""
    yes: list[str] = []
    no: list[str] = []
    for t in tags:
        (yes if pred(t) else no).append(t)
    return yes, no


def _category(facts: TagFacts, tag: str) -> str | None:
    return facts.categories.get(tag_key(tag))


@ORDER_STYLES.register("animagine")
def animagine(tags: list[str], facts: TagFacts, opts: OrderOptions) -> tuple[list[str], int]:
    trig, rest = _split_keep(tags, opts.keep_first)
    counts, rest = _take(rest, is_count_tag)
    chars, rest = _take(rest, lambda t: _category(facts, t) == "character")
    series, rest = _take(rest, lambda t: _category(facts, t) == "copyright")
    head = counts + trig + chars + series
    tail: list[str] = []
    if opts.quality_tags and facts.percentile is not None:
        tail.append(quality_tag(facts.percentile))
    if opts.rating_tags and facts.rating in ANIMAGINE_RATING:
        tail += ANIMAGINE_RATING[facts.rating]
    if opts.year_tags and facts.year is not None:
        tail.append(year_tag(facts.year))
    if opts.aesthetic_tags and facts.aesthetic is not None:
        tail.append(aesthetic_tag(facts.aesthetic))
    return dedupe(head + rest + tail), len(head)


def pony_source(opts: OrderOptions, facts: TagFacts) -> str | None:
    if opts.source_tag == "none":
        return None
    if opts.source_tag == "auto":
        return "source_furry" if facts.site in FURRY_SITES else "source_anime"
    return f"source_{opts.source_tag}"


@ORDER_STYLES.register("pony")
def pony(tags: list[str], facts: TagFacts, opts: OrderOptions) -> tuple[list[str], int]:
    trig, rest = _split_keep(tags, opts.keep_first)
    special: list[str] = []
    if opts.score_tags and facts.percentile is not None:
        special += pony_score_tags(facts.percentile)
    if (src := pony_source(opts, facts)) is not None:
        special.append(src)
    if opts.rating_tags and facts.rating in PONY_RATING:
        special.append(PONY_RATING[facts.rating])
    counts, rest = _take(rest, is_count_tag)
    chars, rest = _take(rest, lambda t: _category(facts, t) == "character")
    series, rest = _take(rest, lambda t: _category(facts, t) == "copyright")
    head = special + trig
    return head + counts + chars + series + rest, len(head)


@ORDER_STYLES.register("confidence")
def confidence(tags: list[str], facts: TagFacts, opts: OrderOptions) -> tuple[list[str], int]:
    trig, rest = _split_keep(tags, opts.keep_first)
    rest = sorted(rest, key=lambda t: -facts.scores.get(tag_key(t), 1.0))  # stable: ties keep their order
    return trig + rest, len(trig)


@ORDER_STYLES.register("e621")
def e621(tags: list[str], facts: TagFacts, opts: OrderOptions) -> tuple[list[str], int]:
    trig, rest = _split_keep(tags, opts.keep_first)
    order = list(opts.category_order)
    slot = {c: i for i, c in enumerate(order)}
    other = slot.get("general", len(order))  # unknown or unlisted categories go with the general tags

    def rank(t: str) -> int:
        return slot.get(_category(facts, t) or "general", other)

    body = sorted(rest, key=rank)
    if opts.rating_tags and facts.rating in E621_RATING and "rating" in slot:
        pos = sum(1 for t in body if rank(t) <= slot["rating"])
        body.insert(pos, E621_RATING[facts.rating])
    return trig + body, len(trig)


# -- dataset-level helpers ---------------------------------------------------------------
def score_percentiles(scores: Mapping[str, float | None]) -> dict[str, float]:
    """Mid-rank percentile (0..1) of each image's score among the scored images."""
    vals = sorted(v for v in scores.values() if v is not None)
    n = len(vals)
    out: dict[str, float] = {}
    if not n:
        return out
    for rid, v in scores.items():
        if v is None:
            continue
        below = bisect.bisect_left(vals, v)
        ties = bisect.bisect_right(vals, v) - below
        out[rid] = (below + 0.5 * ties) / n
    return out


_RATING_WORDS = {"g": "g", "general": "g", "safe": "g", "s": "s", "sensitive": "s",
                 "q": "q", "questionable": "q", "e": "e", "explicit": "e"}


def normalize_rating(rating: str | None, site: str | None = None) -> str | None:
    """Danbooru's g/s/q/e; e621's 's' means safe, so it becomes 'g' there."""
    if not rating:
        return None
    r = rating.strip().lower()
    if site in FURRY_SITES and r == "s":
        return "g"
    return _RATING_WORDS.get(r)


def year_of(created_at: str | None) -> int | None:
    m = re.match(r"\s*(\d{4})", created_at or "")
    return int(m.group(1)) if m else None
