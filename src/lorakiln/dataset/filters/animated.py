"""Animations and videos: no still-image trainer can use them."""

from __future__ import annotations

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item


@FILTERS.register("animated")
class Animated(Filter):
    name = label = "animated"

    def __init__(self, video_formats: list[str]):
        self.video = {f.lower().lstrip(".") for f in video_formats}

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter:
        return cls(cfg.animated_formats)

    def reject(self, item: Item) -> str | None:
        fmt = (item.facts.format or item.record.format or "").lower()
        if fmt in self.video:
            return f"video ({fmt})"
        if (item.facts.frames or 1) > 1:
            return f"{fmt or 'image'} with {item.facts.frames} frames"
        return None

    def describe(self) -> str:
        return f"multi-frame gif/png/webp; {', '.join(sorted(self.video))}"

