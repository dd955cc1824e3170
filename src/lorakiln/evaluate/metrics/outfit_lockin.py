"""Outfit lock-in: the training outfit showing up when another outfit is asked (seed 000's capelet).

The training outfit is the dataset's most frequent non-core tags (reference.outfit_tags). On the
outfit probes, per picture: the share of those tags the tagger finds that the prompt did not ask
for. 0 = the outfit changes cleanly; 1 = the whole training outfit stays on. Per-tag rates and the
base model's rate (the control: tags the prompt itself brings) are in the details, and
`asked_seen`: on the probe that asks for the training outfit, the share where the tagger finds it.
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, mean_ci, metric, present


def lockin_of(samples: list[Sample], outfit: list[str], threshold: float) -> list[float]:
    vals = []
    for s in samples:
        tags = [t for t in outfit if t not in s.requested]
        if tags and s.tags is not None:
            vals.append(sum(present(s, t, threshold) for t in tags) / len(tags))
    return vals


def asked_seen(samples: list[Sample], outfit: list[str], threshold: float) -> float | None:
    """On the probes whose prompt asks for the training outfit (the dataset probe): the share where
    the tagger finds any of it (None: no such probe). 0 says the tagger cannot see the outfit at
    all, so a lock-in of 0 would mean nothing."""
    asked = [s for s in samples if s.tags is not None and any(t in s.requested for t in outfit)]
    if not asked:
        return None
    return sum(any(present(s, t, threshold) for t in outfit if t in s.requested) for s in asked) / len(asked)


@metric("outfit_lockin", "Outfit lock-in", "lower", ("tags",),
        "Share of the training outfit's tags still present when the probe asks for another outfit.")
def outfit_lockin(cond: Condition, ctx: Context) -> MetricValue:
    outfit = ctx.reference.outfit_tags
    if not outfit:
        return MetricValue(None, note="training outfit unknown (no dataset tag frequencies)")
    samples = cond.in_groups(["outfit"])
    vals = lockin_of(samples, outfit, ctx.tag_threshold)
    if not vals:
        return MetricValue(None, note="no outfit probe")
    value, ci = mean_ci(vals)
    per_tag = {t: sum(present(s, t, ctx.tag_threshold) for s in samples) / len(samples) for t in outfit}
    details = {"outfit_tags": list(outfit), "per_tag": per_tag,
               "asked_seen": asked_seen(cond.samples, outfit, ctx.tag_threshold)}
    if ctx.base is not None:
        details["base"] = mean_ci(lockin_of(ctx.base.in_groups(["outfit"]), outfit, ctx.tag_threshold))[0]
    return MetricValue(value, len(vals), ci, details)
