"""Filters, in their fixed order: cheap header and tag checks first, pixel statistics next,
the per-subset cap last (it ranks what the others left).

Adding one: a module here with a Filter subclass and `FILTERS.register(name, factory)`,
plus its place in FILTER_ORDER.
"""

from __future__ import annotations

from lorakiln.config.filter import FilterConfig
from lorakiln.core.errors import ConfigError
from lorakiln.dataset.filters import animated, aspect, cap, identity, monochrome, size, tags  # noqa: F401  (they register)
from lorakiln.dataset.filters.base import FILTERS, ColourStats, Facts, Filter, Item, norm_tag

FILTER_ORDER = ["animated", "size", "aspect", "tags", "monochrome", "identity", "cap"]
LABELS = {name: FILTERS.get(name).label for name in FILTER_ORDER}  # reason prefixes

__all__ = ["FILTERS", "FILTER_ORDER", "ColourStats", "Facts", "Filter", "Item", "build_filters",
           "matches_undo", "norm_tag"]


def build_filters(cfg: FilterConfig) -> list[Filter]:
    """The enabled filters in FILTER_ORDER."""
    unknown = sorted(set(cfg.disable) - set(FILTER_ORDER))
    if unknown:
        raise ConfigError("project.toml", f"[filter] disable: unknown filter(s) {unknown}; known: {FILTER_ORDER}")
    built = (FILTERS.get(name).from_config(cfg) for name in FILTER_ORDER if name not in cfg.disable)
    return [f for f in built if f is not None]


def filter_of_reason(reason: str | None) -> str | None:
    """The filter that wrote a drop reason ('too small: ...' -> 'size'), or None."""
    head = (reason or "").split(":", 1)[0].strip()
    return next((name for name, label in LABELS.items() if label == head), None)


def matches_undo(reason: str | None, pattern: str) -> bool:
    """`--undo mono` matches 'monochrome: ...'; the filter name or its label, by prefix."""
    name = filter_of_reason(reason)
    p = pattern.strip().lower()
    return name is not None and (name.startswith(p) or LABELS[name].startswith(p))
