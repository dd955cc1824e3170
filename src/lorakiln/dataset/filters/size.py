"""Too small to train on: short side (or pixel count) under the configured minimum."""

from __future__ import annotations

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item


@FILTERS.register("size")
class TooSmall(Filter):
    name, label = "size", "too small"

    def __init__(self, min_short_side: int, min_pixels: int):
        self.min_side, self.min_pixels = min_short_side, min_pixels

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter | None:
        return cls(cfg.min_short_side, cfg.min_pixels) if cfg.min_short_side or cfg.min_pixels else None

    def reject(self, item: Item) -> str | None:
        w, h = item.facts.width, item.facts.height
        if not w or not h:
            return None
        if self.min_side and min(w, h) < self.min_side:
            return f"{w}x{h} < {self.min_side}"
        if self.min_pixels and w * h < self.min_pixels:
            return f"{w}x{h} = {w * h} px < {self.min_pixels}"
        return None

    def describe(self) -> str:
        return f"short side < {self.min_side}" + (f" or < {self.min_pixels} px" if self.min_pixels else "")

