"""Adherence: share of the requested tags the tagger finds on the picture.

Per picture: |requested tags found (probability >= threshold)| / |requested tags|; averaged over
the change probes (outfit, pose, view, expression, background), with the per-group values and
the base model's adherence on the same prompts as the control.
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, mean_ci, metric, present
from lorakiln.evaluate.probes import CHANGE_GROUPS


def adherence_of(samples: list[Sample], threshold: float) -> list[float]:
    return [sum(present(s, t, threshold) for t in s.requested) / len(s.requested)
            for s in samples if s.requested and s.tags is not None]


@metric("adherence", "Prompt adherence", "higher", ("tags",),
        "Share of the requested tags (outfit, pose, view, expression, background probes) the tagger finds.")
def adherence(cond: Condition, ctx: Context) -> MetricValue:
    vals = adherence_of(cond.in_groups(CHANGE_GROUPS), ctx.tag_threshold)
    value, ci = mean_ci(vals)
    groups = {g: mean_ci(adherence_of(cond.in_groups([g]), ctx.tag_threshold))[0] for g in CHANGE_GROUPS
              if cond.in_groups([g])}
    details = {"groups": groups}
    if ctx.base is not None and ctx.base is not cond:
        details["base"] = mean_ci(adherence_of(ctx.base.in_groups(CHANGE_GROUPS), ctx.tag_threshold))[0]
    return MetricValue(value, len(vals), ci, details, "" if vals else "no probe with requested tags")
