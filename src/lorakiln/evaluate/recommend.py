"""Pick the best checkpoint and weight from the measured metrics, and say why and what is wrong.

score = F-beta(fidelity, versatility) = (1 + b²)·F·V / (b²·V + F)   (CyberHarem's combination,
reference §1.2, with b = [eval.recommend] fidelity_weight), where
    F = fidelity, capped at 1;
    V = versatility: the mean of the parts besides likeness that were measured, each turned into
        0..1, higher better: flexibility (the metric), adherence, 1 - leakage, 1 - style bleed,
        1 - background bleed, 1 - view-bias excess, 1 - outfit lock-in, diversity (capped at 1).
        It is not the flexibility metric, and is never called flexibility.
A candidate with no measured effect (its pictures are the base model's, or its ΔW is zero) is
never scored nor recommended. Ties go to the higher fidelity, then the weight nearer 1.0, then
the later checkpoint.

Only fidelity and flexibility reward learning the character; every other part is best when the
LoRA changes nothing (the base model itself would win it). So when neither of those measured
anything, the pick cannot be judged: no checkpoint is recommended (status "cannot_judge") and the
candidates are listed unscored, instead of ranking them by how little they change the pictures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lorakiln.evaluate.metrics.effect import PIXEL_FLOOR, no_effect as shows_no_effect

# metric -> turn its value (and details) into a 0..1 "good" part of V (versatility)
VERSATILITY_PARTS: dict[str, Callable[[float, dict], float]] = {
    "flexibility": lambda v, d: min(1.0, v),
    "adherence": lambda v, d: v,
    "leakage": lambda v, d: 1.0 - min(1.0, v),
    "style_bleed": lambda v, d: 1.0 - min(1.0, v),
    "background_bleed": lambda v, d: 1.0 - min(1.0, v),
    "view_bias": lambda v, d: 1.0 - min(1.0, max(0.0, d.get("excess") or 0.0)),
    "outfit_lockin": lambda v, d: 1.0 - v,
    "diversity": lambda v, d: min(1.0, v),
}

# the parts that reward learning the character; the rest penalise change
CHARACTER_METRICS = ("fidelity", "flexibility")

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
    versatility: float | None = None
    excluded: str | None = None  # why it was not scored (no measured effect)

    @property
    def label(self) -> str:
        return f"{self.checkpoint} @ {self.weight:g}"


def versatility(c: Candidate) -> float | None:
    parts = [f(c.values[m], c.details.get(m) or {}) for m, f in VERSATILITY_PARTS.items()
             if c.values.get(m) is not None]
    return sum(parts) / len(parts) if parts else None


def f_beta(fidelity: float, vers: float, beta: float) -> float:
    b2 = beta * beta
    den = b2 * vers + fidelity
    return (1 + b2) * fidelity * vers / den if den > 0 else 0.0


def score(c: Candidate, beta: float) -> float | None:
    fid = c.values.get("fidelity")
    c.versatility = versatility(c)
    if fid is None:
        return c.versatility
    fid = min(1.0, fid)
    return fid if c.versatility is None else f_beta(fid, c.versatility, beta)


def idle(c: Candidate, base: dict[str, float | None] | None = None, tol: float = 1e-3) -> str | None:
    """Why `c` has no measured effect, or None. The effect metric decides; without it, every shared
    metric equal to the base model's is taken as no effect."""
    eff, det = c.values.get("effect"), c.details.get("effect") or {}
    if det.get("delta_norm") == 0:
        return "no measured effect: its weights are zero (‖ΔW‖ = 0), so it cannot change the model"
    if eff is not None:
        if shows_no_effect(eff, det):
            return (f"no measured effect: its pictures differ from the base model's by {eff * 255:.2f} grey "
                    f"levels on average (below {PIXEL_FLOOR * 255:.0f})")
        return None
    shared = [m for m in ("fidelity", "adherence", "diversity") if (base or {}).get(m) is not None]
    if shared and all(c.values.get(m) is not None and abs(c.values[m] - base[m]) <= tol for m in shared):
        return "no measured effect: every metric equals the base model's: " + ", ".join(shared)
    return None


@dataclass
class Recommendation:
    checkpoint: str | None
    weight: float | None
    reason: str
    score: float | None = None
    ranking: list[Candidate] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    status: str = "recommended"  # or "cannot_judge", "no_effect", "nothing_scored"


def findings(c: Candidate) -> list[dict]:
    out = []
    for name, bad, say in FINDINGS:
        v = c.values.get(name)
        if v is not None and bad(v, c.details.get(name) or {}):
            out.append({"metric": name, "value": v, "message": say(v, c.details.get(name) or {})})
    return out


def no_effect(candidates: list[Candidate], base: dict[str, float | None]) -> dict | None:
    """A finding when no checkpoint/weight has a measured effect at all (nothing to recommend)."""
    if not candidates or not all(idle(c, base) for c in candidates):
        return None
    return {"metric": "effect", "value": 0.0,
            "message": "no checkpoint measures differently from the base model (" + idle(candidates[0], base)
            .removeprefix("no measured effect: ") + "): the LoRA has no visible effect yet; train longer or "
            "at a higher learning rate, or check that the metric models can see the character at this picture size"}


def recommend(candidates: list[Candidate], beta: float = 2.0, min_fidelity: float = 0.0,
              base: dict[str, float | None] | None = None) -> Recommendation:
    for c in candidates:
        c.excluded = idle(c, base)
        c.score = None if c.excluded else score(c, beta)
        fid = c.values.get("fidelity")
        if not c.excluded and fid is not None and fid < min_fidelity:
            c.excluded = f"fidelity {fid:.2f} is below [eval.recommend] min_fidelity {min_fidelity:g}"
    ok = [c for c in candidates if c.score is not None and not c.excluded]
    if not ok:
        idle_all = bool(candidates) and all(c.excluded for c in candidates)
        why = ("no checkpoint has a measured effect: every one draws what the base model draws" if idle_all
               else "nothing could be scored: neither fidelity nor any part of versatility was measured (see the notes of each metric)")
        return Recommendation(None, None, why, ranking=candidates, status="no_effect" if idle_all else "nothing_scored")
    if not any(c.values.get(m) is not None for c in ok for m in CHARACTER_METRICS):
        return cannot_judge(candidates, ok)
    ranked = sorted(ok, key=lambda c: (-c.score, -(c.values.get("fidelity") or 0.0), abs(c.weight - 1.0),
                                       -(c.epoch or 0)))
    best = ranked[0]
    rest = [c for c in candidates if c not in ranked]
    return Recommendation(best.checkpoint, best.weight, reason(best, ranked[1:], beta), best.score,
                          ranked + rest, findings(best))


def cannot_judge(candidates: list[Candidate], ok: list[Candidate]) -> Recommendation:
    """No metric that sees the character measured anything: list the candidates unscored, pick none."""
    for c in ok:
        c.score = None
    measured = [m for m in VERSATILITY_PARTS if m not in CHARACTER_METRICS
                and any(c.values.get(m) is not None for c in ok)]
    least = min((c for c in ok if c.values.get("effect") is not None), key=lambda c: c.values["effect"], default=None)
    favoured = (f" (here {least.label}, effect {least.values['effect']:.3f}, the smallest)" if least else "")
    why = ("cannot judge the pick: no metric here can see the character (fidelity and flexibility measured "
           "nothing: see their notes)")
    if measured:
        why += (f"; what was measured ({', '.join(m.replace('_', ' ') for m in measured)}) only penalises change, "
                f"so it would favour the checkpoint that changes the pictures least{favoured}, not the one that "
                "learned the character")
    why += "; compare the grids by eye, or let the metrics see the character (the CCIP model, larger pictures)"
    finding = {"metric": "fidelity", "value": None,
               "message": "the pick cannot be judged: no metric here can see the character, so no checkpoint is "
                          "recommended; look at the grids"}
    return Recommendation(None, None, why, ranking=candidates, findings=[finding], status="cannot_judge")


def _fmt(c: Candidate, name: str) -> str | None:
    v = c.values.get(name)
    return None if v is None else f"{name.replace('_', ' ')} {v:.2f}"


def reason(best: Candidate, others: list[Candidate], beta: float) -> str:
    parts = [p for p in (_fmt(best, m) for m in ("fidelity", "flexibility", "adherence", "outfit_lockin",
                                                   "style_bleed", "leakage")) if p]
    listed = f"; {', '.join(parts)}" if parts else ""
    if best.values.get("fidelity") is None:
        text = (f"{best.label}: the most versatile (score {best.score:.3f} = versatility{listed}); likeness was "
                "not measured (fidelity: see the notes), so this pick does not say the character is right: "
                "check the grid")
    elif best.versatility is None:
        text = f"{best.label}: the most faithful (score {best.score:.3f} = fidelity{listed}; nothing else measured)"
    else:
        text = (f"{best.label}: best balance of likeness and versatility (score {best.score:.3f}, "
                f"F-beta with beta {beta:g}{listed})")
    if others:
        nxt = others[0]
        text += f"; next: {nxt.label} (score {nxt.score:.3f})"
        a, b = best.ci.get("fidelity"), nxt.ci.get("fidelity")
        if a and b and a[0] <= b[1] and b[0] <= a[1]:
            text += "; their fidelity intervals overlap, so more seeds would be needed to tell them apart"
        more = [c for c in others if (c.values.get("fidelity") or 0) > (best.values.get("fidelity") or 0) + 0.05]
        if more:
            m = max(more, key=lambda c: c.values["fidelity"])
            text += (f"; {m.label} is more faithful (fidelity {m.values['fidelity']:.2f}) but less versatile "
                     f"(versatility {m.versatility:.2f} vs {best.versatility:.2f})"
                     if m.versatility is not None and best.versatility is not None else "")
    return text
