"""Trigger control (leakage): is the character there when the trigger word is not?

For each no_trigger probe (LoRA loaded, trigger left out) and its triggered pair (the same
words with the trigger): value = same_rate(without) / same_rate(with). 0 = the trigger fully
controls the character; 1 = the LoRA draws the character whether asked or not. The base
model's rate on the no-trigger prompt is the floor (control).
"""

from __future__ import annotations

import numpy as np

from lorakiln.evaluate.metrics.base import Condition, Context, MetricValue, metric, same_rates


@metric("leakage", "Leakage (no trigger)", "lower", ("features",),
        "Same-character rate without the trigger word divided by the rate with it (LoRA loaded both times).")
def leakage(cond: Condition, ctx: Context) -> MetricValue:
    without = [s for s in cond.samples if s.group == "no_trigger"]
    pairs = {ctx.probes[s.probe].pair for s in without if s.probe in ctx.probes and ctx.probes[s.probe].pair}
    with_ = [s for s in cond.samples if s.probe in pairs]
    r_without, r_with = same_rates(without, ctx), same_rates(with_, ctx)
    if not r_without or not r_with:
        return MetricValue(None, note="needs a no_trigger probe and its triggered pair")
    a, b = float(np.mean(r_without)), float(np.mean(r_with))
    details = {"same_rate_without_trigger": a, "same_rate_with_trigger": b}
    if ctx.base is not None:
        base_rates = same_rates([s for s in ctx.base.samples if s.group == "no_trigger"], ctx)
        details["base_same_rate"] = float(np.mean(base_rates)) if base_rates else None
    if b == 0:
        return MetricValue(None, len(r_without), None, details, "the character never appears even with the trigger")
    return MetricValue(a / b, len(r_without), None, details)
