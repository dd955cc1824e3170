"""Tag rules: required tags (solo) and excluded ones (comic, multiple_views, speech_bubble...)."""

from __future__ import annotations

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item, norm_tag


@FILTERS.register("tags")
class Tags(Filter):
    name = label = "tags"

    def __init__(self, require: list[str], exclude: list[str]):
        self.require = [norm_tag(t) for t in require]
        self.exclude = [norm_tag(t) for t in exclude]

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter | None:
        return cls(cfg.require_tags, cfg.exclude_tags) if cfg.require_tags or cfg.exclude_tags else None

    def reject(self, item: Item) -> str | None:
        tags = item.facts.tags
        if not tags:  # not tagged yet: judged once it is
            return None
        missing = [t for t in self.require if t not in tags]
        if missing:
            return f"missing {', '.join(missing)}"
        found = [t for t in self.exclude if t in tags]
        return f"has {', '.join(found)}" if found else None

    def describe(self) -> str:
        return f"require {self.require or '-'}; exclude {self.exclude or '-'}"

