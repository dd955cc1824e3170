"""View bias: back and side views when no view is asked (seed 000: back views dominated).

On every triggered probe that asks no view, the share of pictures the tagger sees from behind or
from the side; against the dataset's share of those views (ss_tag_frequency) and the base
model's on the same prompts. `excess` = share - max(dataset, base): above 0 the LoRA turns the
character around more than either its data or the base model would.
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, metric, present

VIEWS = {"back": ("from_behind",), "side": ("from_side", "profile")}
UNASKED = ("fidelity", "outfit", "pose", "expression", "background")


def view_share(samples: list[Sample], threshold: float, view: str | None = None) -> float | None:
    tags = [t for v, ts in VIEWS.items() if view in (None, v) for t in ts]
    tagged = [s for s in samples if s.tags is not None]
    if not tagged:
        return None
    return sum(any(present(s, t, threshold) for t in tags) for s in tagged) / len(tagged)


def dataset_share(tag_share: dict[str, float]) -> float:
    """Share of dataset images in back or side view (per-tag counts only: the larger view tag per view)."""
    return min(1.0, sum(max((tag_share.get(t, 0.0) for t in ts), default=0.0) for ts in VIEWS.values()))


@metric("view_bias", "View bias (back/side)", "lower", ("tags",),
        "Share of back or side views when the prompt asks none; compare with the dataset and the base model.")
def view_bias(cond: Condition, ctx: Context) -> MetricValue:
    samples = cond.in_groups(UNASKED)
    share = view_share(samples, ctx.tag_threshold)
    if share is None:
        return MetricValue(None, note="no probe without a view")
    data = dataset_share(ctx.reference.tag_share)
    base = view_share(ctx.base.in_groups(UNASKED), ctx.tag_threshold) if ctx.base is not None else None
    details = {"back": view_share(samples, ctx.tag_threshold, "back"),
               "side": view_share(samples, ctx.tag_threshold, "side"),
               "dataset": data, "base": base, "excess": share - max(data, base or 0.0)}
    return MetricValue(share, len(samples), None, details)
