"""Booru tags + tagger scores -> an image's first tags; and how tagger scores sit in a record.

The three public functions are pure (a record and a TagConfig in, plain values out) and are
what the caption stage calls:

- `tag_scores(record, cfg)`: selected tag -> confidence, best first (booru tags count as 1.0).
- `initial_tags(record, cfg)`: the same tags as a list, best first.
- `tag_categories(record)`: tag -> category (general, character, copyright, artist, meta,
  species, lore, rating, ...) for every tag the record knows, booru categories winning.
"""

from __future__ import annotations

from typing import Mapping

from lorakiln.config.tag import TagConfig
from lorakiln.core.records import ImageRecord, TaggerScores
from lorakiln.tagging.thresholds import character_threshold, general_threshold, select

# booru tags all score 1.0; among them, this category order breaks the tie
CATEGORY_ORDER = ("character", "copyright", "artist", "species", "general", "meta", "lore")
CATEGORIES_KEY = "tagger_categories"  # record.extra: tagger tag -> category, when not general
ASIDE_KEY = "taggers"  # record.extra: model -> scores of taggers other than the active one
BOORU_SCORE = 1.0


def tag_scores(record: ImageRecord, cfg: TagConfig) -> dict[str, float]:
    """Selected tags with their confidence, best first, merged by `cfg.merge`."""
    merged: dict[str, float] = {}
    seen: set[str] = set()
    parts = []
    if cfg.merge != "tagger":
        parts.append(booru_tags(record, cfg.drop_categories))
    if cfg.merge != "booru":
        parts.append(tagger_tags(record, cfg))
    for part in parts:
        for tag, p in part.items():
            if _key(tag) not in seen:
                seen.add(_key(tag))
                merged[tag] = p
    return dict(sorted(merged.items(), key=lambda kv: -kv[1]))


def initial_tags(record: ImageRecord, cfg: TagConfig) -> list[str]:
    """An image's first caption tags, most confident first (see `tag_scores`)."""
    return list(tag_scores(record, cfg))


def tag_categories(record: ImageRecord) -> dict[str, str]:
    """Tag -> category for booru and tagger tags; a booru category wins over the tagger's."""
    out: dict[str, str] = {}
    seen: set[str] = set()

    def add(tag: str, cat: str) -> None:
        if _key(tag) not in seen:
            seen.add(_key(tag))
            out[tag] = cat

    for cat, tags in record.tags.items():
        for t in tags:
            add(t, "rating" if t.startswith("rating:") else cat)
    ts = record.tagger
    if ts is not None:
        extra = record.extra.get(CATEGORIES_KEY) or {}
        for t in ts.character:
            add(t, "character")
        for t in ts.general:
            add(t, extra.get(t, "general"))
        for t in ts.rating:
            add(t, "rating")
    return out


def booru_tags(record: ImageRecord, drop_categories: list[str]) -> dict[str, float]:
    """The record's booru tags scored 1.0, by category order; rating pseudo-tags dropped."""
    drop = set(drop_categories)
    cats = sorted(record.tags, key=lambda c: CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else len(CATEGORY_ORDER))
    out: dict[str, float] = {}
    for cat in cats:
        if cat in drop:
            continue
        for t in record.tags[cat]:
            if t and not t.startswith("rating:"):
                out.setdefault(t, BOORU_SCORE)
    return out


def tagger_tags(record: ImageRecord, cfg: TagConfig) -> dict[str, float]:
    """Character and general tags whose stored scores pass the thresholds, best first.

    Thresholds (and MCut) see all stored scores; dropped categories are removed afterwards.
    """
    ts = record.tagger
    if ts is None:
        return {}
    drop = set(cfg.drop_categories)
    cats = record.extra.get(CATEGORIES_KEY) or {}
    chars = select(ts.character, character_threshold(cfg, ts.character), cfg.score_floor)
    general = select(ts.general, general_threshold(cfg, ts.general, ts.model), cfg.score_floor)
    merged = {t: p for t, p in chars.items() if "character" not in drop}
    merged.update((t, p) for t, p in general.items() if cats.get(t, "general") not in drop)
    return dict(sorted(merged.items(), key=lambda kv: -kv[1]))  # ties: character first


def tagger_rating(record: ImageRecord) -> str | None:
    """The tagger's most likely rating label (general/sensitive/questionable/explicit), if any."""
    r = record.tagger.rating if record.tagger else {}
    return max(r, key=r.__getitem__) if r else None


# -- how tagger scores are stored in a record ----------------------------------------
def has_scores(record: ImageRecord, model: str) -> bool:
    return (record.tagger is not None and record.tagger.model == model) or model in (
        record.extra.get(ASIDE_KEY) or {}
    )


def store_scores(record: ImageRecord, scores: TaggerScores, categories: Mapping[str, str]) -> None:
    """Make `scores` the active tagger output; another model's scores are kept aside."""
    _put_aside(record)
    aside = dict(record.extra.get(ASIDE_KEY) or {})
    aside.pop(scores.model, None)
    _set_extra(record, ASIDE_KEY, aside)
    record.tagger = scores
    _set_extra(record, CATEGORIES_KEY, {t: c for t, c in categories.items() if c != "general"})


def activate(record: ImageRecord, model: str) -> bool:
    """Make the stored scores of `model` active (no model run); False if there are none."""
    if record.tagger is not None and record.tagger.model == model:
        return True
    aside = record.extra.get(ASIDE_KEY) or {}
    if model not in aside:
        return False
    data = dict(aside[model])
    cats = data.pop("categories", {})
    store_scores(record, TaggerScores(model=model, **data), cats)
    return True


def _put_aside(record: ImageRecord) -> None:
    ts = record.tagger
    if ts is None:
        return
    aside = dict(record.extra.get(ASIDE_KEY) or {})
    data = ts.model_dump(exclude={"model"})
    data["categories"] = dict(record.extra.get(CATEGORIES_KEY) or {})
    aside[ts.model] = data
    _set_extra(record, ASIDE_KEY, aside)


def _set_extra(record: ImageRecord, key: str, value: dict) -> None:
    extra = dict(record.extra)
    if value:
        extra[key] = value
    else:
        extra.pop(key, None)
    record.extra = extra


def _key(tag: str) -> str:
    """Booru tags use '_', some imported captions use spaces: compare them as one."""
    return tag.strip().replace(" ", "_")
