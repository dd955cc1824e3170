"""The filter contract: a small action that says why an image should go, or nothing.

Per-item filters implement `reject(item) -> str | None` (waifuc's `check(item) -> bool`, with
the reason kept); batch filters (the per-subset cap) override `run(items)` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lorakiln.config.filter import FilterConfig
from lorakiln.core.records import ImageRecord
from lorakiln.core.registry import Registry

KEEP_KEY = "filter_keep"  # record.extra: filters the user overrode with --undo


@dataclass(frozen=True)
class ColourStats:
    """Colour statistics of a downscaled copy; see monochrome.colour_stats."""

    colour: float  # fraction of drawn pixels with real colour
    off_ramp: float  # fraction of drawn pixels off their brightness level's average colour
    hue_spread: float  # 1 - concentration of the brightness levels' hues


@dataclass(frozen=True)
class Facts:
    """What filters look at, gathered once by the service (header probe, tags, colour stats)."""

    width: int | None = None
    height: int | None = None
    format: str | None = None
    frames: int | None = None
    tags: frozenset[str] = frozenset()
    colour: ColourStats | None = None


@dataclass(frozen=True)
class Item:
    record: ImageRecord
    facts: Facts


class Filter:
    name: str = ""  # registry name: `disable = [...]`, `--undo`
    label: str = ""  # reason prefix: "<label>: detail"
    needs_pixels = False
    per_image = True  # judges each image alone (False: ranks a batch, like the per-subset cap)

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> "Filter | None":
        """The filter set up from [filter], or None when its settings switch it off."""
        raise NotImplementedError

    def reject(self, item: Item) -> str | None:
        raise NotImplementedError

    def run(self, items: Sequence[Item]) -> dict[str, str]:
        """Record id -> reason for the items this filter drops."""
        out = {}
        for it in items:
            if not exempt(it.record, self.name) and (detail := self.reject(it)):
                out[it.record.id] = f"{self.label}: {detail}"
        return out

    def describe(self) -> str:
        return ""


def exempt(record: ImageRecord, name: str) -> bool:
    return name in (record.extra.get(KEEP_KEY) or [])


def norm_tag(tag: str) -> str:
    """Compare tags the way boorus write them: lower case, underscores, unescaped brackets."""
    return tag.strip().lower().replace(" ", "_").replace("\\(", "(").replace("\\)", ")")


FILTERS: Registry[type[Filter]] = Registry("filter")
