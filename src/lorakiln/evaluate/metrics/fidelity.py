"""Fidelity: is it the character? Same-rate against the reference pictures on the fidelity probes.

same_rate(image) = share of reference pictures whose difference to it is <= the threshold
(CCIP's calibrated one, or for the fallbacks the 75th percentile of the differences between
reference pictures). The value is the mean same-rate divided by the same-rate of the reference
prototype (the normalised mean feature, CyberHarem's "upper bound"): 1.0 = as recognisable as
the dataset's own average picture. The base model on the same prompts is the control (~0).
"""

from __future__ import annotations

import numpy as np

from lorakiln.evaluate.metrics.base import Condition, Context, Differences, MetricValue, fidelity_of, metric, same_rates

CALIBRATION_PERCENTILE = 75.0


def prototype(features: np.ndarray) -> np.ndarray:
    """L2-normalised rows averaged, renormalised to the rows' mean length (CCIP's merge)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = features / np.maximum(norms, 1e-12)
    mean = unit.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12) * float(norms.mean()))[None, :]


def calibrate(features: np.ndarray, differences: Differences,
              threshold: float | None) -> tuple[float | None, float | None]:
    """(threshold, upper bound) for a reference set; the threshold is kept when the model has one."""
    if features is None or len(features) == 0:
        return threshold, None
    if threshold is None:
        if len(features) < 2:
            return None, None
        d = differences(features, features)
        off = d[~np.eye(len(features), dtype=bool)]
        threshold = float(np.percentile(off, CALIBRATION_PERCENTILE))
    upper = float((differences(prototype(features), features) <= threshold).mean())
    return threshold, upper


@metric("fidelity", "Fidelity", "higher", ("features",),
        "Same-character rate against the dataset on the fidelity probes, divided by the dataset prototype's "
        "own rate (1 = as recognisable as the dataset's average picture).")
def fidelity(cond: Condition, ctx: Context) -> MetricValue:
    mv = fidelity_of(cond.in_groups(["fidelity"]), ctx)
    if ctx.base is not None and mv.value is not None:
        rates = same_rates(ctx.base.in_groups(["fidelity"]), ctx)
        mv.details["base_same_rate"] = float(np.mean(rates)) if rates else None
    return mv
