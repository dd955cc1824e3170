"""Metrics that cannot see the character: the same value for the base model and every LoRA.

The same-character metrics (fidelity, flexibility, leakage) compare pictures with the dataset
through an embedder. The base model without the LoRA is their control. When the control scores
exactly what every checkpoint scores, although the LoRA's pictures measurably differ from the
base model's, the embedder does not tell this character apart at all (a blind fallback, a
threshold too loose, pictures too small): the number says nothing about the LoRA, and reporting
"fidelity 1.00" would recommend anything. Such a value is withdrawn with a "cannot measure" note.
A common value of 0 stays: the embedder sees the dataset's pictures as the character and none of
the generated ones, which is a measurement (low fidelity).
"""

from __future__ import annotations

from lorakiln.evaluate.metrics.base import METRICS, MetricValue
from lorakiln.evaluate.metrics.effect import no_effect

TOLERANCE = 1e-3


def character_metrics() -> list[str]:
    return [n for n in METRICS.names() if "features" in METRICS.get(n).needs]


def _changed(cand: dict[str, MetricValue]) -> bool:
    e = cand.get("effect")
    return e is not None and e.value is not None and not no_effect(e.value, e.details)


def blind_value(name: str, base: dict[str, MetricValue], cands: list[dict[str, MetricValue]]) -> float | None:
    """The value shared by the base model and every candidate when `name` cannot see the character."""
    b = base.get(name)
    if b is None or b.value is None or b.value <= TOLERANCE or not cands or not any(map(_changed, cands)):
        return None
    vals = [c[name].value for c in cands if name in c]
    if len(vals) != len(cands) or any(v is None or abs(v - b.value) > TOLERANCE for v in vals):
        return None
    return b.value


def withdraw_blind(base: dict[str, MetricValue], cands: list[dict[str, MetricValue]],
                   embedder: str) -> list[str]:
    """Replace every blind character metric by "cannot measure" (in place); one note per metric."""
    notes = []
    for name in character_metrics():
        v = blind_value(name, base, cands)
        if v is None:
            continue
        why = (f"cannot measure: {name} is {v:.2f} for the base model and for every checkpoint alike, though "
               f"their pictures differ; {embedder} does not tell this character from the base model's "
               "pictures (use the CCIP model, larger pictures or more reference pictures)")
        for mv in [base[name], *(c[name] for c in cands)]:
            mv.details = {**mv.details, "unseparated_value": mv.value}
            mv.value, mv.ci, mv.note = None, None, why
        notes.append(why)
    return notes
