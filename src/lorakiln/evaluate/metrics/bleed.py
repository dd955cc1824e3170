"""Style bleed: on prompts that do not ask for the character, how far does the LoRA move the picture?

Paired on the same probe and seed, the style-descriptor difference between the LoRA's picture and
the base model's, divided by the base model's natural variation (the mean difference between its
own pictures of the same probe at different seeds; across probes when there is one seed). 0 = the
LoRA leaves unrelated prompts alone; 1 = as different as another seed; above 1 = a strong bleed.
`toward_dataset` (> 0) says the change goes toward the dataset's look (palette, layout, flatness):
the "unintended yellow elements" of seed 004, the flat colouring of seed 000.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from lorakiln.evaluate.descriptor import cosine_differences
from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, mean_ci, metric


def _d(a: np.ndarray, b: np.ndarray) -> float:
    return float(cosine_differences(a[None, :], b[None, :])[0, 0])


def natural_variation(base: list[Sample]) -> float | None:
    """Mean style difference between base pictures of the same probe (different seeds), else of any two."""
    by_probe: dict[str, list[np.ndarray]] = {}
    for s in base:
        if s.style is not None:
            by_probe.setdefault(s.probe, []).append(s.style)
    same = [_d(a, b) for rows in by_probe.values() for a, b in combinations(rows, 2)]
    if same:
        return float(np.mean(same))
    rows = [r for rs in by_probe.values() for r in rs]
    anyp = [_d(a, b) for a, b in combinations(rows, 2)]
    return float(np.mean(anyp)) if anyp else None


@metric("style_bleed", "Style bleed", "lower", ("base",),
        "Style difference from the base model on unrelated prompts (same seed), relative to the base "
        "model's seed-to-seed variation.")
def style_bleed(cond: Condition, ctx: Context) -> MetricValue:
    pairs = []
    for s in cond.in_groups(["unrelated"]):
        b = ctx.base.get(s.probe, s.seed)
        if b is not None and s.style is not None and b.style is not None:
            pairs.append((s, b))
    if not pairs:
        return MetricValue(None, note="no unrelated probe with a base-model picture")
    natural = natural_variation(ctx.base.in_groups(["unrelated"]))
    dists = [_d(s.style, b.style) for s, b in pairs]
    value, ci = mean_ci(dists, natural or 1.0)
    details = {"paired_difference": float(np.mean(dists)), "natural_variation": natural}
    ref = ctx.reference.styles
    if ref is not None and len(ref):
        proto = ref.mean(axis=0)
        before = [_d(b.style, proto) for _, b in pairs]
        after = [_d(s.style, proto) for s, _ in pairs]
        scale = float(np.mean(before)) or 1.0
        details["toward_dataset"] = float(np.mean(np.subtract(before, after))) / scale
    note = "" if natural else "one base picture only: value is the raw difference"
    return MetricValue(value, len(dists), ci, details, note)
