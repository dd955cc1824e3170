"""Metrics that cannot tell the base model from the LoRA: "cannot measure" instead of a number.

Some metrics measure the base model's own pictures exactly as they measure a checkpoint's:
fidelity, flexibility and leakage (through the character embedder), adherence, view bias and
outfit lock-in (through the tagger). The base model is their control. When the control scores
exactly what every checkpoint scores, although the checkpoints' pictures measurably differ from
the base model's (the effect metric), the model behind the metric does not see what the LoRA
changes (a weak fallback embedder, a tagger at a picture size it cannot read, a loose threshold):
the number says nothing about the LoRA. It is withdrawn, with a "cannot measure" note, and so
takes no part in the score nor the reason.

A shared value is judged per metric (BLIND_RULES), because a constant can be a real result:
- fidelity, flexibility, leakage: a shared 0 stays (the embedder sees the dataset's pictures as
  the character and none of the generated ones: never recognised, a measurement);
- adherence: a shared 1 stays (every asked tag found in every picture: the LoRA loses none);
  any other shared value, 0 included, is blind (the base model is asked the same things);
- view bias, outfit lock-in: a shared 0 stays (no turned-away pictures, no training outfit when
  another is asked: what a good LoRA and the base model do) unless the tagger never finds that
  view or outfit even on the probes whose prompt asks for it (`details.asked_seen` 0 everywhere);
- effect, style bleed, background bleed, diversity are not compared: they are differences from
  (or ratios to) the base model's pictures, so the base model's own value is 0 (or 1) by
  construction, and a shared 0 means the LoRA leaves that part of the picture alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lorakiln.evaluate.metrics.base import METRICS, MetricValue
from lorakiln.evaluate.metrics.effect import no_effect

TOLERANCE = 1e-3

# (shared value, every MetricValue of it) -> why it is blind, or None when the value is a result
Judge = Callable[[float, list[MetricValue]], str | None]


@dataclass(frozen=True)
class Rule:
    model: str  # "embedder" or "tagger": which model the metric sees through; "" = not compared
    judge: Judge | None = None


def _asked_unseen(mvs: list[MetricValue]) -> bool:
    seen = [m.details.get("asked_seen") for m in mvs]
    return bool(seen) and all(s is not None and s <= TOLERANCE for s in seen)


def _character(v: float, mvs: list[MetricValue]) -> str | None:
    return "{embedder} does not tell this character from the base model's pictures" if v > TOLERANCE else None


def _adherence(v: float, mvs: list[MetricValue]) -> str | None:
    if v >= 1 - TOLERANCE:
        return None
    if v <= TOLERANCE:
        return "{tagger} finds none of the asked tags in any picture, the base model's included"
    return "{tagger} finds the asked tags as often on the base model's pictures as on every checkpoint's"


def _views(v: float, mvs: list[MetricValue]) -> str | None:
    if v > TOLERANCE:
        return "{tagger} sees a back or side view as often on the base model's pictures as on every checkpoint's"
    if _asked_unseen(mvs):
        return "{tagger} never finds a back or side view, not even where the prompt asks for one"
    return None


def _outfit(v: float, mvs: list[MetricValue]) -> str | None:
    if v > TOLERANCE:
        return "{tagger} finds the training outfit as often on the base model's pictures as on every checkpoint's"
    if _asked_unseen(mvs):
        return "{tagger} never finds the training outfit, not even where the prompt asks for it"
    return None


NOT_COMPARED = Rule("")
BLIND_RULES: dict[str, Rule] = {
    "fidelity": Rule("embedder", _character),
    "flexibility": Rule("embedder", _character),
    "leakage": Rule("embedder", _character),
    "adherence": Rule("tagger", _adherence),
    "view_bias": Rule("tagger", _views),
    "outfit_lockin": Rule("tagger", _outfit),
    "effect": NOT_COMPARED,
    "style_bleed": NOT_COMPARED,
    "background_bleed": NOT_COMPARED,
    "diversity": NOT_COMPARED,
}
ADVICE = {"embedder": "use the CCIP model, larger pictures or more reference pictures",
          "tagger": "use larger pictures or another tagger, and check the grids by eye"}


def compared_metrics() -> list[str]:
    """The metrics whose base-model value is a control, in registry order."""
    return [n for n in METRICS.names() if BLIND_RULES.get(n, NOT_COMPARED).judge is not None]


def _changed(cand: dict[str, MetricValue]) -> bool:
    e = cand.get("effect")
    return e is not None and e.value is not None and not no_effect(e.value, e.details)


def shared_value(name: str, base: dict[str, MetricValue], cands: list[dict[str, MetricValue]]) -> float | None:
    """The value the base model and every candidate share, when some candidate changes the pictures."""
    b = base.get(name)
    if b is None or b.value is None or not cands or not any(map(_changed, cands)):
        return None
    vals = [c[name].value for c in cands if name in c]
    if len(vals) != len(cands) or any(v is None or abs(v - b.value) > TOLERANCE for v in vals):
        return None
    return b.value


def blind_reason(name: str, base: dict[str, MetricValue], cands: list[dict[str, MetricValue]]) -> str | None:
    """Why `name` cannot tell the base model from the LoRA here (a template naming {embedder} or
    {tagger}), or None when its values are a measurement."""
    rule = BLIND_RULES.get(name, NOT_COMPARED)
    v = shared_value(name, base, cands) if rule.judge else None
    if v is None:
        return None
    return rule.judge(v, [base[name], *(c[name] for c in cands)])


def withdraw_blind(base: dict[str, MetricValue], cands: list[dict[str, MetricValue]], embedder: str,
                   tagger: str = "the tagger") -> list[str]:
    """Replace every blind metric by "cannot measure" (in place); one note per metric."""
    notes = []
    for name in compared_metrics():
        why = blind_reason(name, base, cands)
        if why is None:
            continue
        v = base[name].value
        rule = BLIND_RULES[name]
        text = (f"cannot measure: {name.replace('_', ' ')} is {v:.2f} for the base model and for every checkpoint "
                f"alike, though their pictures differ; {why.format(embedder=embedder, tagger=tagger)} "
                f"({ADVICE[rule.model]})")
        for mv in [base[name], *(c[name] for c in cands)]:
            mv.details = {**mv.details, "unseparated_value": mv.value}
            mv.value, mv.ci, mv.note = None, None, text
        notes.append(text)
    return notes
