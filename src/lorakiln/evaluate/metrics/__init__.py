"""Evaluation metrics, one per file, registered in METRICS (importing this package loads them all)."""

from lorakiln.evaluate.metrics import (  # noqa: F401  (registration)
    adherence,
    background,
    bleed,
    diversity,
    effect,
    fidelity,
    flexibility,
    leakage,
    outfit_lockin,
    view_bias,
)
from lorakiln.evaluate.metrics.base import METRICS, Condition, Context, MetricValue, Reference, Sample, compute

__all__ = ["METRICS", "Condition", "Context", "MetricValue", "Reference", "Sample", "compute"]
