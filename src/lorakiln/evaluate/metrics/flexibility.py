"""Flexibility: does the character survive a change of outfit, pose, view, expression, background?

The fidelity measure (same-rate / prototype rate) on the change probes only, overall and per
group; adherence (adherence.py) says whether the change itself happened.
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, fidelity_of, metric
from lorakiln.evaluate.probes import CHANGE_GROUPS


@metric("flexibility", "Flexibility", "higher", ("features",),
        "Fidelity on the probes that change outfit, pose, view, expression or background: "
        "the character must survive the change.")
def flexibility(cond: Condition, ctx: Context) -> MetricValue:
    mv = fidelity_of(cond.in_groups(CHANGE_GROUPS), ctx)
    if mv.value is not None:
        mv.details["groups"] = {g: fidelity_of(cond.in_groups([g]), ctx).value for g in CHANGE_GROUPS
                                if cond.in_groups([g])}
    return mv
