"""The curated fixed-feature tag list (feature_tags.toml) and the core-tag suggestion.

A tag is suggested as a fixed feature when it belongs to a feature group (hair colour, eye
colour, species, ...) and appears in at least `threshold` of the images (CyberHarem's rule,
35 % by default): a hat worn in every picture is part of the character, a hat worn once is not.
The special tags an order style adds (score_9, source_anime, quality, rating, year) are never
suggested: they are in every caption on purpose and `kiln caption order` puts them back.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping

from lorakiln.captions.freq import TagCount
from lorakiln.captions.model import tag_key
from lorakiln.captions.order import SPECIAL_TAGS
from lorakiln.core.errors import ConfigError, KilnError

DATA_FILE = "feature_tags.toml"
SPECIAL_REASON = "special tag of the base model, added by `kiln caption order`: keep it"


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    label: str
    tags: frozenset[str]
    suffixes: tuple[tuple[str, ...], ...]
    categories: frozenset[str]
    exclude: frozenset[str]

    def matches(self, key: str, category: str | None = None) -> bool:
        if key in self.exclude:
            return False
        if key in self.tags or (category is not None and category in self.categories):
            return True
        words = tuple(key.split("_"))
        return any(len(words) >= len(s) and words[-len(s):] == s for s in self.suffixes)


@dataclass(frozen=True)
class FeatureList:
    version: int
    groups: tuple[FeatureGroup, ...]

    def group_of(self, tag: str, category: str | None = None, only: Iterable[str] | None = None) -> FeatureGroup | None:
        """The first group `tag` belongs to (optionally among the groups named in `only`)."""
        key = tag_key(tag)
        allowed = set(only) if only is not None else None
        for g in self.groups:
            if (allowed is None or g.name in allowed) and g.matches(key, category):
                return g
        return None

    def names(self) -> list[str]:
        return [g.name for g in self.groups]

    def check_names(self, names: Iterable[str]) -> None:
        unknown = sorted(set(names) - set(self.names()))
        if unknown:
            raise KilnError(f"unknown feature group {unknown[0]!r}; known: {', '.join(self.names())}")


def parse_feature_list(doc: Mapping, source: str = DATA_FILE) -> FeatureList:
    try:
        colours = [str(c) for c in doc.get("colours", [])]
        groups = tuple(_group(name, g, colours) for name, g in doc["groups"].items())
        return FeatureList(version=int(doc["version"]), groups=groups)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(source, f"feature list is malformed: {e!r}") from None


def _group(name: str, g: Mapping, colours: list[str]) -> FeatureGroup:
    tags = {tag_key(t) for t in g.get("tags", [])}
    for tpl in g.get("templates", []):
        tags.update(tag_key(tpl.format(colour=c)) for c in colours)
    return FeatureGroup(
        name=name,
        label=str(g.get("label", name)),
        tags=frozenset(tags),
        suffixes=tuple(tuple(tag_key(s).split("_")) for s in g.get("suffixes", [])),
        categories=frozenset(g.get("categories", [])),
        exclude=frozenset(tag_key(t) for t in g.get("exclude", [])),
    )


@lru_cache(maxsize=1)
def bundled_features() -> FeatureList:
    text = (resources.files("lorakiln.captions") / DATA_FILE).read_text(encoding="utf-8")
    return parse_feature_list(tomllib.loads(text))


@dataclass(frozen=True)
class CoreSuggestion:
    tag: str
    count: int
    share: float
    group: str | None  # feature group label, None when not a feature tag
    core: bool  # marked for pruning
    reason: str


def suggest_core(
    counts: Iterable[TagCount],
    categories: Mapping[str, str],
    features: FeatureList,
    threshold: float = 0.35,
    groups: Iterable[str] | None = None,
) -> list[CoreSuggestion]:
    """Every tag by frequency, with fixed-feature tags marked and the reason for each decision."""
    groups = list(groups) if groups is not None else None
    if groups is not None:
        features.check_names(groups)
    out = []
    for c in counts:
        if tag_key(c.tag) in SPECIAL_TAGS:
            out.append(CoreSuggestion(c.tag, c.count, c.share, None, False, SPECIAL_REASON))
            continue
        g = features.group_of(c.tag, categories.get(tag_key(c.tag)), groups)
        core = g is not None and c.share >= threshold
        out.append(CoreSuggestion(c.tag, c.count, c.share, g.label if g else None, core, _reason(g, c.share, threshold)))
    return out


def _reason(g: FeatureGroup | None, share: float, threshold: float) -> str:
    pct, lim = f"{share:.0%}", f"{threshold:.0%}"
    if g is None:
        return "frequent, not a feature tag: consolidate or keep" if share >= threshold else ""
    if share >= threshold:
        return f"{g.label}, {pct} >= {lim}: absorb into the trigger"
    return f"{g.label}, {pct} < {lim}: varies, keep it tagged"
