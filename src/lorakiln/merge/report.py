"""Per-module results of merge / resize / extract / bake and their summary."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import torch


@dataclass
class ModuleReport:
    name: str
    rank: int | None = None
    error: float | None = None  # ‖result ΔW − exact ΔW‖_F / ‖exact ΔW‖_F
    retained: float | None = None  # Frobenius share of the spectrum kept
    old_rank: int | None = None
    note: str = ""
    norm: float | None = None  # ‖exact ΔW‖_F, where an overall error is reported


@dataclass
class OpReport:
    """What an operation did; `summary()` is what the CLI prints and `--json` emits."""

    operation: str
    output: str = ""
    modules: list[ModuleReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, worst: int = 5) -> dict[str, Any]:
        errs = [m for m in self.modules if m.error is not None and math.isfinite(m.error)]
        ret = [m.retained for m in self.modules if m.retained is not None]
        ranks = [m.rank for m in self.modules if m.rank is not None]
        out: dict[str, Any] = {"operation": self.operation, "output": self.output, "skipped": self.skipped,
                               "modules": len(self.modules), **self.extra}
        if errs:
            out["error_mean"] = fmean(m.error for m in errs)
            out["error_max"] = max(m.error for m in errs)
            out["worst"] = [{"module": m.name, "error": m.error, "rank": m.rank}
                            for m in sorted(errs, key=lambda m: -m.error)[:worst]]
        if ret:
            out["retained_mean"] = fmean(ret)
            out["retained_min"] = min(ret)
        if ranks:
            out["rank_min"], out["rank_max"] = min(ranks), max(ranks)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def product_2d(up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """up @ down of (possibly conv-shaped) factors, in float32, as (out, in·k·k)."""
    u = up.to(torch.float32).reshape(up.shape[0], -1)
    d = down.to(torch.float32).reshape(down.shape[0], -1)
    return u @ d
