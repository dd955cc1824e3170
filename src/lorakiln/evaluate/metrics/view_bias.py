"""View bias: back and side views when no view is asked (seed 000: back views dominated).

On every triggered probe that asks no view, the share of pictures the tagger sees from behind or
from the side; against the dataset's share of those views (ss_tag_frequency) and the base
model's on the same prompts. `excess` = share - max(dataset, base): above 0 the LoRA turns the
character around more than either its data or the base model would. `asked_seen`: on the view
probes (which ask for a back or side view), the share where the tagger finds the asked view.
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


def asked_seen(samples: list[Sample], threshold: float) -> float | None:
    """On the probes that ask for a back or side view: the share where the tagger finds that view
    (None: no such probe). 0 says the tagger cannot see views, so a view bias of 0 would mean nothing."""
    kinds = {t: v for v, ts in VIEWS.items() for t in ts}
    asked = [(s, {kinds[t] for t in s.requested if t in kinds}) for s in samples if s.tags is not None]
    asked = [(s, vs) for s, vs in asked if vs]
    if not asked:
        return None
    return sum(any(present(s, t, threshold) for v in vs for t in VIEWS[v]) for s, vs in asked) / len(asked)


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
               "dataset": data, "base": base, "excess": share - max(data, base or 0.0),
               "asked_seen": asked_seen(cond.in_groups(["view"]), ctx.tag_threshold)}
    return MetricValue(share, len(samples), None, details)
