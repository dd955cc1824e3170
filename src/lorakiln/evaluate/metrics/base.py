"""What every metric works on: analysed samples (no pictures), the reference, and the registry.

A Condition is one way of generating: the base model alone ("base"), or a checkpoint at a
weight. Its Samples are the probe x seed pictures reduced to numbers: a character feature row,
a style descriptor, the tagger's probabilities and the background's gradient energy. Metrics
are pure functions of (condition, context) and return a MetricValue; one metric per file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

import numpy as np

from lorakiln.core.registry import Registry
from lorakiln.evaluate.probes import Probe

Differences = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Sample:
    probe: str
    group: str
    seed: int
    requested: tuple[str, ...] = ()
    feature: np.ndarray | None = None  # character embedding row
    style: np.ndarray | None = None  # descriptor row
    tags: dict[str, float] | None = None  # tagger probabilities (None: no tagger)
    border: float | None = None  # gradient energy of the picture's outer frame
    pixels: np.ndarray | None = None  # 32x32 RGB thumbnail (uint8), for paired picture differences


@dataclass
class Condition:
    key: str  # "base" or "<checkpoint file>@<weight>"
    checkpoint: str | None = None
    epoch: int | None = None
    weight: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    delta_norm: float | None = None  # weight x Frobenius norm of the checkpoint's ΔW (None: unknown)

    def in_groups(self, groups: Iterable[str]) -> list[Sample]:
        g = set(groups)
        return [s for s in self.samples if s.group in g]

    def get(self, probe: str, seed: int) -> Sample | None:
        return next((s for s in self.samples if s.probe == probe and s.seed == seed), None)


@dataclass
class Reference:
    """The character's own pictures and the dataset's tag statistics."""

    features: np.ndarray | None = None  # character embeddings of the reference pictures
    styles: np.ndarray | None = None  # descriptors of the reference pictures
    tag_share: dict[str, float] = field(default_factory=dict)  # tag -> share of dataset images
    outfit_tags: list[str] = field(default_factory=list)  # the training outfit
    n_images: int = 0


@dataclass
class Context:
    reference: Reference
    base: Condition | None = None
    differences: Differences | None = None  # character-embedding differences (None: no embedder)
    threshold: float | None = None  # same-character threshold on differences
    upper_bound: float | None = None  # same-rate of the reference prototype (CyberHarem's normaliser)
    tag_threshold: float = 0.35
    probes: dict[str, Probe] = field(default_factory=dict)


@dataclass
class MetricValue:
    value: float | None
    n: int = 0
    ci: tuple[float, float] | None = None  # 95% interval of `value`
    details: dict = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict:
        return {"value": _r(self.value), "n": self.n, "ci": None if self.ci is None else [_r(x) for x in self.ci],
                "details": _round_all(self.details), "note": self.note}


def _r(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _round_all(d):
    if isinstance(d, dict):
        return {k: _round_all(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_round_all(v) for v in d]
    if isinstance(d, (float, np.floating)):
        return _r(float(d))
    return d


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    better: Literal["higher", "lower", "neither"]  # "neither": a fact to read, not a quality
    needs: tuple[str, ...]  # "features" (character embedder), "tags" (tagger), "base" (control)
    fn: Callable[[Condition, Context], MetricValue]
    description: str


METRICS: Registry[Metric] = Registry("metric")


def better_text(m: Metric) -> str:
    return "0 = no change" if m.better == "neither" else f"{m.better} is better"


def metric(name: str, title: str, better: Literal["higher", "lower", "neither"], needs: tuple[str, ...], description: str):
    """Register a metric function under `name` (decorator)."""

    def deco(fn):
        METRICS.register(name, Metric(name, title, better, needs, fn, description))
        return fn

    return deco


def missing_need(m: Metric, cond: Condition, ctx: Context) -> str | None:
    if "features" in m.needs and (ctx.differences is None or ctx.reference.features is None
                                  or not len(ctx.reference.features)):
        return "no character embedder or no reference pictures"
    if "features" in m.needs and ctx.threshold is None:
        return "no same-character threshold (fewer than 2 reference pictures)"
    if "tags" in m.needs and any(s.tags is None for s in cond.samples):
        return "no tagger (set [eval.models] tagger or [tag] local_models)"
    if "base" in m.needs and ctx.base is None:
        return "no base-model control images"
    return None


def compute(cond: Condition, ctx: Context, names: Iterable[str] | None = None) -> dict[str, MetricValue]:
    """Every registered metric (or `names`) on one condition; unmet needs give value None and a note."""
    out: dict[str, MetricValue] = {}
    for name in (list(names) if names is not None else METRICS.names()):
        m = METRICS.get(name)
        why = missing_need(m, cond, ctx)
        out[name] = MetricValue(None, note=why) if why else m.fn(cond, ctx)
    return out


# -- shared helpers ----------------------------------------------------------------------------

def mean_ci(values: list[float], scale: float = 1.0) -> tuple[float | None, tuple[float, float] | None]:
    """Mean and a normal-approximation 95% interval (None for n < 2), both divided by `scale`."""
    if not values:
        return None, None
    v = np.asarray(values, dtype=np.float64)
    m = float(v.mean()) / scale
    if len(v) < 2:
        return m, None
    half = 1.96 * float(v.std(ddof=1)) / math.sqrt(len(v)) / scale
    return m, (m - half, m + half)


def same_rates(samples: list[Sample], ctx: Context) -> list[float]:
    """Per sample: the share of reference pictures it is judged the same character as."""
    rows = [s.feature for s in samples if s.feature is not None]
    if not rows:
        return []
    diff = ctx.differences(np.stack(rows), ctx.reference.features)
    return (diff <= ctx.threshold).mean(axis=1).astype(float).tolist()


def mean_difference(samples: list[Sample], ctx: Context) -> float | None:
    rows = [s.feature for s in samples if s.feature is not None]
    if not rows:
        return None
    return float(ctx.differences(np.stack(rows), ctx.reference.features).mean())


def fidelity_of(samples: list[Sample], ctx: Context) -> MetricValue:
    """Same-rate against the reference, divided by the reference prototype's (CyberHarem)."""
    rates = same_rates(samples, ctx)
    if not rates:
        return MetricValue(None, note="no samples")
    upper = ctx.upper_bound if ctx.upper_bound else 1.0
    value, ci = mean_ci(rates, upper)
    return MetricValue(value, len(rates), ci, {"same_rate": float(np.mean(rates)), "upper_bound": upper,
                                               "mean_difference": mean_difference(samples, ctx)})


def present(sample: Sample, tag: str, threshold: float) -> bool:
    return bool(sample.tags) and sample.tags.get(tag, 0.0) >= threshold
