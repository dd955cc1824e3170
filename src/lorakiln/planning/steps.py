"""The seeds' repeats/epochs/steps tables, table lookup, and the steps arithmetic.

kohya counts whole batches per epoch: steps per epoch = ceil(images x repeats / batch)
(at least; aspect buckets can add a partial batch each), total = that x epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from lorakiln.planning.explain import fmt, round_half_up

Lookup = Literal["interpolate", "nearest"]


@dataclass(frozen=True)
class Row:
    """One row as the seed writes it: images x repeats x epochs / batch = steps."""

    images: int
    repeats: int
    epochs: int
    batch: int
    steps: int  # as quoted (the seeds round: 1000 x 10 / 3 is written 3300)

    @property
    def t(self) -> int:
        """Images seen per epoch (seed 001 calls it T)."""
        return self.images * self.repeats


@dataclass(frozen=True)
class Table:
    name: str
    source: str
    rows: tuple[Row, ...]


# seed 001, "Baby Steps": Holostrawberry's reference table for SD1.5 (one folder)
HOLOSTRAWBERRY = Table("Holostrawberry's image table", "seed 001, SD1.5", (
    Row(20, 10, 10, 2, 1000),
    Row(100, 3, 10, 2, 1500),
    Row(400, 1, 10, 2, 2000),
    Row(1000, 1, 10, 3, 3300),
))

# seed 001, "Multiple Concepts": epochs from T = sum of images x repeats
CONCEPTS = Table("seed 001's T table", "seed 001 'Multiple Concepts', SD1.5", (
    Row(200, 1, 17, 2, 1700),
    Row(300, 1, 12, 2, 1800),
    Row(400, 1, 10, 2, 2000),
))

# seed 001, "Training a LoRA in Pony Diffusion": repeats and epochs for PDXL
PDXL = Table("seed 001's PDXL table", "seed 001, Pony Diffusion V6 XL", (
    Row(20, 2, 10, 2, 200),
    Row(40, 2, 6, 2, 240),
    Row(60, 2, 5, 2, 300),
    Row(100, 2, 4, 2, 400),
    Row(200, 2, 3, 2, 600),
    Row(600, 2, 2, 2, 1200),
))

TABLES = {t.name: t for t in (HOLOSTRAWBERRY, CONCEPTS, PDXL)}


def lookup(points: list[tuple[float, float]], x: float, how: Lookup = "interpolate") -> tuple[float, str]:
    """y for x from (x, y) rows sorted by x; clamped at the ends. Returns (y, arithmetic)."""
    if x <= points[0][0]:
        return points[0][1], f"{fmt(x)} is at or below the first row ({fmt(points[0][0])}): {fmt(points[0][1])}"
    if x >= points[-1][0]:
        return points[-1][1], f"{fmt(x)} is at or above the last row ({fmt(points[-1][0])}): {fmt(points[-1][1])}"
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            break
    if x in (x0, x1):
        y = y0 if x == x0 else y1
        return y, f"row {fmt(x)}: {fmt(y)}"
    if how == "nearest":
        y, near = (y0, x0) if x - x0 <= x1 - x else (y1, x1)
        return y, f"{fmt(x)} is closest to row {fmt(near)}: {fmt(y)}"
    y = y0 + (x - x0) / (x1 - x0) * (y1 - y0)
    return y, (f"between rows {fmt(x0)} -> {fmt(y0)} and {fmt(x1)} -> {fmt(y1)}: "
               f"{fmt(y0)} + ({fmt(x)} - {fmt(x0)}) / ({fmt(x1)} - {fmt(x0)}) x ({fmt(y1)} - {fmt(y0)}) = {fmt(y)}")


def target_t(table: Table, images: int, how: Lookup = "interpolate") -> tuple[float, str]:
    """Images seen per epoch the table recommends for `images` images.

    Between rows T is interpolated; outside the table the nearest end row's repeats apply.
    """
    first, last = table.rows[0], table.rows[-1]
    for row, beyond in ((first, images < first.images), (last, images > last.images)):
        if beyond:
            t = images * row.repeats
            return float(t), f"outside the table: the {row.images}-image row's {row.repeats} repeats: {images} x {row.repeats} = {t}"
    return lookup([(r.images, r.t) for r in table.rows], images, how)


def epochs_by_t(table: Table, t: int, how: Lookup = "interpolate") -> tuple[int, str]:
    y, how_text = lookup([(r.t, r.epochs) for r in table.rows], t, how)
    e = max(1, round_half_up(y))
    return e, how_text if e == y else f"{how_text} -> {e}"


def steps_for(t: int, epochs: int, batch: int) -> tuple[int, int, str]:
    """(steps per epoch, total steps, arithmetic) as kohya counts them (whole batches)."""
    per_epoch = math.ceil(t / batch)
    total = per_epoch * epochs
    exact = t * epochs / batch
    note = "" if exact == total else f" (the seeds' {t} x {epochs} / {batch} = {fmt(exact)}; kohya counts whole batches)"
    return per_epoch, total, f"ceil({t} / {batch}) = {per_epoch} steps per epoch x {epochs} epochs = {total}{note}"
