"""Background bleed: does the dataset's flat background come along when a real one is asked?

On the background probes, paired with the base model's picture of the same probe and seed:
flatness = max(0, 1 - E_lora / E_base), E = mean gradient magnitude in the outer fifth of the
picture (where the background is). 0 = as detailed as the base model's background, 1 = flat.
With a tagger, the share of pictures tagged simple/white/grey background (LoRA and base) is
reported too (seed 000: "the flat coloring ... is bleeding into background").
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, Sample, mean_ci, metric, present

FLAT_TAGS = ("simple_background", "white_background", "grey_background", "gradient_background")


def flat_tag_rate(samples: list[Sample], threshold: float) -> float | None:
    tagged = [s for s in samples if s.tags is not None]
    if not tagged:
        return None
    return sum(any(present(s, t, threshold) for t in FLAT_TAGS) for s in tagged) / len(tagged)


@metric("background_bleed", "Background bleed", "lower", ("base",),
        "How much flatter the background is than the base model's on the background probes (same seed).")
def background_bleed(cond: Condition, ctx: Context) -> MetricValue:
    samples = cond.in_groups(["background"])
    vals = []
    for s in samples:
        b = ctx.base.get(s.probe, s.seed)
        if b is not None and s.border is not None and b.border:
            vals.append(max(0.0, 1.0 - s.border / b.border))
    if not vals:
        return MetricValue(None, note="no background probe with a base-model picture")
    value, ci = mean_ci(vals)
    details = {"flat_tag_rate": flat_tag_rate(samples, ctx.tag_threshold),
               "base_flat_tag_rate": flat_tag_rate(ctx.base.in_groups(["background"]), ctx.tag_threshold)}
    return MetricValue(value, len(vals), ci, details)
