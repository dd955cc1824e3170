"""Turning tagger probabilities into tags: fixed thresholds, 'balanced', MCut, the storage floor.

Pure functions on plain dicts/arrays; no model, no files.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from lorakiln.config.tag import TagConfig
from lorakiln.tagging.models import balanced_threshold


def mcut_threshold(values: Iterable[float]) -> float:
    """MCut (Largeron et al. 2012): the midpoint of the largest gap between sorted scores.

    With one score there is no gap: it is kept (threshold = half of it). With none: inf.
    """
    s = sorted((float(v) for v in values), reverse=True)
    if not s:
        return math.inf
    if len(s) == 1:
        return s[0] / 2
    gaps = [s[i] - s[i + 1] for i in range(len(s) - 1)]
    i = max(range(len(gaps)), key=gaps.__getitem__)  # first of equal gaps: the highest one
    return (s[i] + s[i + 1]) / 2


def select(scores: Mapping[str, float], threshold: float, floor: float = 0.0) -> dict[str, float]:
    """Tags scoring at least `threshold` (and never below the storage floor), best first."""
    cut = max(threshold, floor)
    return dict(sorted(((t, p) for t, p in scores.items() if p >= cut), key=lambda kv: -kv[1]))


def general_threshold(cfg: TagConfig, scores: Mapping[str, float], model: str) -> float:
    """The general threshold for one image: MCut, the model's balanced value, or a number."""
    if cfg.mcut:
        return mcut_threshold(scores.values())
    if cfg.threshold == "balanced":
        return balanced_threshold(model)
    return float(cfg.threshold)


def character_threshold(cfg: TagConfig, scores: Mapping[str, float]) -> float:
    """The character threshold for one image; MCut never goes below the character floor."""
    if cfg.character_mcut:
        return max(cfg.character_mcut_floor, mcut_threshold(scores.values()))
    return cfg.character_threshold


def keep_above_floor(names: list[str], probs: np.ndarray, floor: float) -> dict[str, float]:
    """Scores >= floor, plus the single best one below it.

    Keeping that one extra score makes MCut on stored scores equal MCut on all scores
    whenever the chosen gap starts at or above the floor (the only gaps that select tags).
    """
    probs = np.asarray(probs, dtype=np.float64)
    out: dict[str, float] = {}
    best_below = -1
    for i in np.argsort(-probs, kind="stable"):
        p = float(probs[i])
        if p >= floor:
            out[names[i]] = round(p, 5)
        else:
            best_below = int(i)
            break
    if best_below >= 0:
        out[names[best_below]] = round(float(probs[best_below]), 5)
    return out
