"""Diversity: do different seeds still give different pictures? (seed 004: "repetitive images
with similar compositions, expressions, and styles").

Mean style difference between the pictures of the same probe at different seeds, over the
fidelity probes, divided by the base model's same quantity. 1 = as varied as the base model,
well below 1 = collapsed onto a few compositions.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lorakiln.evaluate.descriptor import cosine_differences
from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, metric


def spread(samples: list[Sample]) -> list[float]:
    by_probe: dict[str, list[np.ndarray]] = {}
    for s in samples:
        if s.style is not None:
            by_probe.setdefault(s.probe, []).append(s.style)
    return [float(cosine_differences(a[None], b[None])[0, 0]) for rows in by_probe.values()
            for a, b in combinations(rows, 2)]


@metric("diversity", "Diversity", "higher", ("base",),
        "Seed-to-seed variety on the fidelity probes relative to the base model's (1 = as varied).")
def diversity(cond: Condition, ctx: Context) -> MetricValue:
    own = spread(cond.in_groups(["fidelity"]))
    base = spread(ctx.base.in_groups(["fidelity"]))
    if not own or not base or np.mean(base) == 0:
        return MetricValue(None, note="needs at least two seeds")
    return MetricValue(float(np.mean(own) / np.mean(base)), len(own), None,
                       {"spread": float(np.mean(own)), "base_spread": float(np.mean(base))})
