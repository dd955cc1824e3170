"""Booru tags + tagger scores -> an image's first tags; and how tagger scores sit in a record.

The three public functions are pure (a record and a TagConfig in, plain values out) and are
what the caption stage calls:

- `tag_scores(record, cfg)`: selected tag -> confidence, best first (booru tags count as 1.0).
- `initial_tags(record, cfg)`: the same tags as a list, best first.
- `tag_categories(record, cfg=None)`: tag -> category (general, character, copyright, artist,
  meta, species, lore, rating, ...) for every tag the record knows, booru categories winning.

`cfg.also` names extra taggers whose stored scores (kept aside in `extra.taggers`) pass their
own thresholds and join the main model's tags; a tag found by several keeps its best score.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Mapping

from lorakiln.config.tag import AlsoTagger, TagConfig
from lorakiln.core.records import ImageRecord, TaggerScores
from lorakiln.tagging.models import find_by_repo
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


def tag_categories(record: ImageRecord, cfg: TagConfig | None = None) -> dict[str, str]:
    """Tag -> category for booru and tagger tags; a booru category wins over a tagger's.

    With `cfg`, a selected tagger tag takes the category of the model whose score was kept,
    and the extra taggers are those of `cfg.also`; without it, every stored tagger counts
    (the active one first).
    """
    out: dict[str, str] = {}
    seen: set[str] = set()

    def add(tag: str, cat: str) -> None:
        if _key(tag) not in seen:
            seen.add(_key(tag))
            out[tag] = cat

    for cat, tags in record.tags.items():
        for t in tags:
            add(t, "rating" if t.startswith("rating:") else cat)
    if cfg is not None:
        for t, (_, cat) in _tagger_selection(record, cfg).items():
            add(t, cat)
    for ts, extra in _scored_models(record, cfg):
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

    The main model's tags, then those of each `cfg.also` tagger above its own thresholds; a tag
    found by several models keeps the highest score. Thresholds (and MCut) see all stored
    scores of their model; dropped categories are removed afterwards.
    """
    return {t: p for t, (p, _) in _tagger_selection(record, cfg).items()}


def _tagger_selection(record: ImageRecord, cfg: TagConfig) -> dict[str, tuple[float, str]]:
    """Selected tagger tag -> (score, category), best first, over the main and extra models."""
    merged: dict[str, tuple[float, str]] = {}
    spelling: dict[str, str] = {}  # _key -> the spelling kept
    models = [(record.tagger, record.extra.get(CATEGORIES_KEY) or {}, cfg)]
    main = record.tagger.model if record.tagger else None
    for extra in cfg.also:
        found = also_scores(record, extra)
        if found is not None and found[0].model != main:
            models.append((found[0], found[1], cfg.for_also(extra)))
    for ts, cats, model_cfg in models:
        if ts is None:
            continue
        for t, (p, cat) in _select_model(ts, cats, model_cfg).items():
            k = _key(t)
            if k not in spelling:
                spelling[k] = t
                merged[t] = (p, cat)
            elif p > merged[spelling[k]][0]:
                merged[spelling[k]] = (p, cat)
    return dict(sorted(merged.items(), key=lambda kv: -kv[1][0]))  # ties: main model, character first


def _select_model(ts: TaggerScores, cats: Mapping[str, str], cfg: TagConfig) -> dict[str, tuple[float, str]]:
    drop = set(cfg.drop_categories)
    chars = select(ts.character, character_threshold(cfg, ts.character), cfg.score_floor)
    general = select(ts.general, general_threshold(cfg, ts.general, ts.model), cfg.score_floor)
    out = {t: (p, "character") for t, p in chars.items() if "character" not in drop}
    for t, p in general.items():
        cat = cats.get(t, "general")
        if cat not in drop:
            out.setdefault(t, (p, cat))
    return out


def also_scores(record: ImageRecord, extra: AlsoTagger) -> tuple[TaggerScores, dict[str, str]] | None:
    """The stored scores (and e621 categories) of an extra tagger, active or aside; None if none."""
    for name in stored_names(extra.model):
        if record.tagger is not None and record.tagger.model == name:
            return record.tagger, dict(record.extra.get(CATEGORIES_KEY) or {})
        data = (record.extra.get(ASIDE_KEY) or {}).get(name)
        if data is not None:
            data = dict(data)
            cats = data.pop("categories", {})
            return TaggerScores(model=name, **data), cats
    return None


def stored_names(model: str) -> list[str]:
    """The names scores of a configured tagger may be stored under, most likely first.

    A registered name or repo id is stored under itself (a registered repo under its name);
    a folder under `local:<folder name>`. Pure: no file is looked at.
    """
    names = [model]
    spec = find_by_repo(model)
    if spec is not None:
        names.insert(0, spec.name)
    folder = PurePath(model.rstrip("/\\")).name
    if folder:
        names.append(f"local:{folder}")
    return list(dict.fromkeys(names))


def _scored_models(record: ImageRecord, cfg: TagConfig | None) -> list[tuple[TaggerScores, Mapping[str, str]]]:
    """The active scores, then the extra taggers' (cfg.also; every stored one without cfg)."""
    out = []
    if record.tagger is not None:
        out.append((record.tagger, record.extra.get(CATEGORIES_KEY) or {}))
    if cfg is None:
        for name, data in (record.extra.get(ASIDE_KEY) or {}).items():
            data = dict(data)
            cats = data.pop("categories", {})
            out.append((TaggerScores(model=name, **data), cats))
    else:
        for extra in cfg.also:
            found = also_scores(record, extra)
            if found is not None:
                out.append(found)
    return out


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


def store_aside(record: ImageRecord, scores: TaggerScores, categories: Mapping[str, str]) -> None:
    """Keep an extra tagger's scores beside the active ones (`extra.taggers.<model>`)."""
    if record.tagger is not None and record.tagger.model == scores.model:
        store_scores(record, scores, categories)
        return
    aside = dict(record.extra.get(ASIDE_KEY) or {})
    data = scores.model_dump(exclude={"model"})
    data["categories"] = {t: c for t, c in categories.items() if c != "general"}
    aside[scores.model] = data
    _set_extra(record, ASIDE_KEY, aside)


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
