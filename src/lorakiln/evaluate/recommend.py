"""Pick the best checkpoint and weight from the measured metrics, and say why and what is wrong.

score = F-beta(fidelity, flexibility) = (1 + b²)·F·C / (b²·C + F)   (CyberHarem's combination,
reference §1.2, with b = [eval.recommend] fidelity_weight), where
    F = fidelity, capped at 1;
    C = the mean of the flexibility parts that were measured, each turned into 0..1, higher better:
        flexibility, adherence, 1 - leakage, 1 - style bleed, 1 - background bleed,
        1 - view-bias excess, 1 - outfit lock-in, diversity (capped at 1).
Ties go to the higher fidelity, then the weight nearer 1.0, then the later checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# metric -> turn its value (and details) into a 0..1 "good" part of C
FLEX_PARTS: dict[str, Callable[[float, dict], float]] = {
    "flexibility": lambda v, d: min(1.0, v),
    "adherence": lambda v, d: v,
    "leakage": lambda v, d: 1.0 - min(1.0, v),
    "style_bleed": lambda v, d: 1.0 - min(1.0, v),
    "background_bleed": lambda v, d: 1.0 - min(1.0, v),
    "view_bias": lambda v, d: 1.0 - min(1.0, max(0.0, d.get("excess") or 0.0)),
    "outfit_lockin": lambda v, d: 1.0 - v,
    "diversity": lambda v, d: min(1.0, v),
}

# (metric, is it a problem?, message) for the findings
FINDINGS: list[tuple[str, Callable[[float, dict], bool], Callable[[float, dict], str]]] = [
    ("fidelity", lambda v, d: v < 0.5,
     lambda v, d: f"low fidelity ({v:.2f} of the dataset's own rate): the character is often not recognised; "
                  "train longer, raise the weight, or check the dataset and captions"),
    ("flexibility", lambda v, d: v < 0.5,
     lambda v, d: f"the character is lost when outfit, pose, view or background change (flexibility {v:.2f})"),
    ("leakage", lambda v, d: v > 0.5,
     lambda v, d: f"the character appears without the trigger word ({v:.0%} of the triggered rate): "
                  "the trigger does not control it"),
    ("style_bleed", lambda v, d: v > 0.5,
     lambda v, d: f"style bleed: unrelated prompts change {v:.2f}x a seed's variation"
                  + (" toward the dataset's look" if (d.get("toward_dataset") or 0) > 0.1 else "")),
    ("background_bleed", lambda v, d: v > 0.3,
     lambda v, d: f"backgrounds come out flatter than the base model's ({v:.0%} less detail): "
                  "the dataset's flat/white backgrounds bleed"),
    ("view_bias", lambda v, d: (d.get("excess") or 0) > 0.1,
     lambda v, d: f"back/side views in {v:.0%} of pictures when no view is asked "
                  f"(dataset {d.get('dataset') or 0:.0%}, base model {d.get('base') or 0:.0%})"),
    ("outfit_lockin", lambda v, d: v > 0.3,
     lambda v, d: f"outfit lock-in: {v:.0%} of the training outfit stays when another outfit is asked"
                  + (f" (mostly {_top_tag(d)})" if _top_tag(d) else "")),
    ("diversity", lambda v, d: v < 0.7,
     lambda v, d: f"pictures vary little between seeds ({v:.2f} of the base model's variety)"),
]


def _top_tag(d: dict) -> str | None:
    per = d.get("per_tag") or {}
    return max(per, key=per.get) if per and max(per.values()) > 0 else None


@dataclass
class Candidate:
    checkpoint: str
    epoch: int | None
    weight: float
    values: dict[str, float | None]
    details: dict[str, dict] = field(default_factory=dict)
    ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    score: float | None = None
    flex: float | None = None

    @property
    def label(self) -> str:
        return f"{self.checkpoint} @ {self.weight:g}"


def flex_score(c: Candidate) -> float | None:
    parts = [f(c.values[m], c.details.get(m) or {}) for m, f in FLEX_PARTS.items() if c.values.get(m) is not None]
    return sum(parts) / len(parts) if parts else None


def f_beta(fidelity: float, flex: float, beta: float) -> float:
    b2 = beta * beta
    den = b2 * flex + fidelity
    return (1 + b2) * fidelity * flex / den if den > 0 else 0.0


def score(c: Candidate, beta: float) -> float | None:
    fid = c.values.get("fidelity")
    c.flex = flex_score(c)
    if fid is None:
        return c.flex
    fid = min(1.0, fid)
    return fid if c.flex is None else f_beta(fid, c.flex, beta)


@dataclass
class Recommendation:
    checkpoint: str | None
    weight: float | None
    reason: str
    score: float | None = None
    ranking: list[Candidate] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)


def findings(c: Candidate) -> list[dict]:
    out = []
    for name, bad, say in FINDINGS:
        v = c.values.get(name)
        if v is not None and bad(v, c.details.get(name) or {}):
            out.append({"metric": name, "value": v, "message": say(v, c.details.get(name) or {})})
    return out


def no_effect(candidates: list[Candidate], base: dict[str, float | None], tol: float = 1e-3) -> dict | None:
    """A finding when no checkpoint/weight measures differently from the base model at all."""
    shared = [m for m in ("fidelity", "adherence", "diversity") if base.get(m) is not None]
    if not candidates or not shared:
        return None
    if any(c.values.get(m) is None or abs(c.values[m] - base[m]) > tol for c in candidates for m in shared):
        return None
    return {"metric": "effect", "value": 0.0,
            "message": "no checkpoint measures differently from the base model (" + ", ".join(shared)
            + "): the LoRA has no visible effect yet; train longer or at a higher learning rate, "
            "or check that the metric models can see the character at this picture size"}


def recommend(candidates: list[Candidate], beta: float = 2.0, min_fidelity: float = 0.0) -> Recommendation:
    for c in candidates:
        c.score = score(c, beta)
    ok = [c for c in candidates if c.score is not None
          and (c.values.get("fidelity") is None or c.values["fidelity"] >= min_fidelity)]
    if not ok:
        return Recommendation(None, None, "nothing could be scored: no fidelity or flexibility was measured "
                                          "(see the notes of each metric)", ranking=candidates)
    ranked = sorted(ok, key=lambda c: (-c.score, -(c.values.get("fidelity") or 0.0), abs(c.weight - 1.0),
                                       -(c.epoch or 0)))
    best = ranked[0]
    rest = [c for c in candidates if c not in ranked]
    return Recommendation(best.checkpoint, best.weight, reason(best, ranked[1:], beta), best.score,
                          ranked + rest, findings(best))


def _fmt(c: Candidate, name: str) -> str | None:
    v = c.values.get(name)
    return None if v is None else f"{name.replace('_', ' ')} {v:.2f}"


def reason(best: Candidate, others: list[Candidate], beta: float) -> str:
    parts = [p for p in (_fmt(best, m) for m in ("fidelity", "flexibility", "adherence", "outfit_lockin",
                                                   "style_bleed", "leakage")) if p]
    text = (f"{best.label}: best balance of likeness and flexibility (score {best.score:.3f}, "
            f"F-beta with beta {beta:g}; {', '.join(parts)})")
    if others:
        nxt = others[0]
        text += f"; next: {nxt.label} (score {nxt.score:.3f})"
        a, b = best.ci.get("fidelity"), nxt.ci.get("fidelity")
        if a and b and a[0] <= b[1] and b[0] <= a[1]:
            text += "; their fidelity intervals overlap, so more seeds would be needed to tell them apart"
        more = [c for c in others if (c.values.get("fidelity") or 0) > (best.values.get("fidelity") or 0) + 0.05]
        if more:
            m = max(more, key=lambda c: c.values["fidelity"])
            text += (f"; {m.label} is more faithful (fidelity {m.values['fidelity']:.2f}) but less flexible "
                     f"({m.flex:.2f} vs {best.flex:.2f})" if m.flex is not None and best.flex is not None else "")
    return text
