"""Effect: does the LoRA change the pictures at all? A LoRA that does nothing must never be picked.

Paired on every probe and seed: the mean absolute pixel difference (32x32 thumbnails, 0..1 scale)
between the LoRA's picture and the base model's picture of the same probe and seed. Details: the
same divided by the base model's seed-to-seed difference (`relative`: 1 = as different as another
seed), the paired character-embedding difference, and w·‖ΔW‖ of the file. No effect = the weights
add nothing (‖ΔW‖ = 0) or the pictures differ by less than one grey level on average.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lorakiln.evaluate.descriptor import pixel_difference
from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, mean_ci, metric

PIXEL_FLOOR = 1.0 / 255.0  # below one grey level on average: no visible effect


def seed_variation(base: list[Sample]) -> float | None:
    """Mean pixel difference between base pictures of the same probe at different seeds."""
    by_probe: dict[str, list[np.ndarray]] = {}
    for s in base:
        if s.pixels is not None:
            by_probe.setdefault(s.probe, []).append(s.pixels)
    diffs = [pixel_difference(a, b) for rows in by_probe.values() for a, b in combinations(rows, 2)]
    return float(np.mean(diffs)) if diffs else None


def _feature_difference(pairs: list[tuple[Sample, Sample]], ctx: Context) -> float | None:
    rows = [(s.feature, b.feature) for s, b in pairs if s.feature is not None and b.feature is not None]
    if not rows or ctx.differences is None:
        return None
    return float(np.mean([ctx.differences(a[None, :], b[None, :])[0, 0] for a, b in rows]))


def no_effect(value: float | None, details: dict) -> bool:
    """True when the measurement says the LoRA leaves the pictures as the base model draws them."""
    if details.get("delta_norm") == 0:
        return True
    return value is not None and value < PIXEL_FLOOR


@metric("effect", "Effect (vs base)", "neither", ("base",),
        "Mean pixel difference from the base model's picture of the same probe and seed (0 = identical: "
        "the LoRA does nothing); a LoRA without an effect is never recommended.")
def effect(cond: Condition, ctx: Context) -> MetricValue:
    pairs = [(s, b) for s in cond.samples if s.pixels is not None
             and (b := ctx.base.get(s.probe, s.seed)) is not None and b.pixels is not None]
    details: dict = {"delta_norm": cond.delta_norm}
    if not pairs:
        note = "no picture paired with a base-model picture"
        return MetricValue(None, 0, None, {**details, "none": no_effect(None, details)}, note)
    value, ci = mean_ci([pixel_difference(s.pixels, b.pixels) for s, b in pairs])
    natural = seed_variation(ctx.base.samples)
    details.update(relative=value / natural if natural else None, seed_variation=natural,
                   feature_difference=_feature_difference(pairs, ctx))
    details["none"] = no_effect(value, details)
    note = "no effect: the pictures are the base model's" if details["none"] and cond is not ctx.base else ""
    return MetricValue(value, len(pairs), ci, details, note)
