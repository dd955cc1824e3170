"""Aspect ratios no training bucket can take (e.g. beyond 1:4)."""

from __future__ import annotations

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item


@FILTERS.register("aspect")
class Aspect(Filter):
    name = label = "aspect"

    def __init__(self, max_aspect: float):
        self.max = max_aspect

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter | None:
        return cls(cfg.max_aspect) if cfg.max_aspect else None

    def reject(self, item: Item) -> str | None:
        w, h = item.facts.width, item.facts.height
        if not w or not h:
            return None
        ratio = max(w, h) / min(w, h)
        return f"{w}x{h} is {ratio:.2f}:1 > {self.max:g}:1" if ratio > self.max else None

    def describe(self) -> str:
        return f"long/short side > {self.max:g}"

