"""One explained number: the value, the rule that produced it and the arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    what: str  # e.g. "repeats[summer]", "epochs", "unet_lr"
    value: Any
    rule: str  # which rule or table, with its source
    arithmetic: str  # the numbers that produced the value

    def line(self) -> str:
        return f"{self.what} = {fmt(self.value)}  <- {self.rule}: {self.arithmetic}"


def round_half_up(x: float) -> int:
    """Schoolbook rounding (2.5 -> 3), as the seeds round by hand; Python's round() is banker's."""
    return int(math.floor(x + 0.5))


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e9:
            return str(int(v))
        return f"{v:.4g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.3e}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


def sig(x: float, digits: int) -> float:
    """x rounded to `digits` significant digits (0.000135802... -> 0.000136 for 3)."""
    return 0.0 if x == 0 else float(f"{x:.{digits}g}")


def pct(x: float) -> str:
    """A share as a percentage to one decimal, so 19.5% is not shown as the 20% limit it is under."""
    return f"{x * 100:.1f}".removesuffix(".0") + "%"
