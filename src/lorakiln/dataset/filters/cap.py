"""Per-subset cap: keep the best N images of each subset by score, then resolution."""

from __future__ import annotations

from typing import Sequence

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item, exempt


@FILTERS.register("cap")
class Cap(Filter):
    name = label = "cap"
    per_image = False

    def __init__(self, limit: int):
        self.limit = limit

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter | None:
        return cls(cfg.max_per_subset) if cfg.max_per_subset else None

    def run(self, items: Sequence[Item]) -> dict[str, str]:
        by_subset: dict[str, list[tuple[int, Item]]] = {}
        for order, it in enumerate(items):
            by_subset.setdefault(it.record.subset, []).append((order, it))
        out = {}
        for subset, members in by_subset.items():
            fixed = sum(exempt(it.record, self.name) for _, it in members)  # --undo'd: always kept
            ranked = sorted((m for m in members if not exempt(m[1].record, self.name)), key=_rank)
            for _, it in ranked[max(0, self.limit - fixed):]:
                score = it.record.score if it.record.score is not None else "-"
                out[it.record.id] = f"{self.label}: subset {subset} keeps its best {self.limit} (score {score})"
        return out

    def describe(self) -> str:
        return f"best {self.limit} per subset"


def _rank(member: tuple[int, Item]) -> tuple:
    order, it = member
    score = it.record.score if it.record.score is not None else float("-inf")
    pixels = (it.facts.width or 0) * (it.facts.height or 0)
    return (-score, -pixels, order)

