"""Repeats per subset: balance images x repeats across subsets (seed 001 'Multiple Concepts').

With equal weights every subset ends up showing about as many images per epoch as the
largest one (which gets 1 repeat): 20, 33, 100, 50 images -> 5, 3, 1, 2 repeats. A weight
scales a subset's share (weight 2 -> about twice the images seen).
"""

from __future__ import annotations

from typing import Callable

from lorakiln.planning.explain import Step, fmt, round_half_up

RULE = "balance images x repeats across subsets (seed 001 'Multiple Concepts')"
SHARE_TOLERANCE = 0.1  # a weighted subset's share of the epoch may miss its weight by 10%
MAX_FINER = 10  # at most this many times the balanced repeats, to meet the weights


def exact_repeats(counts: dict[str, int], weights: dict[str, float]) -> tuple[dict[str, float], str, float]:
    """Unrounded relative repeats (the reference subset gets 1), the reference subset and its images/weight."""
    ref_subset = max(counts, key=lambda s: counts[s] / weights.get(s, 1.0))
    ref = counts[ref_subset] / weights.get(ref_subset, 1.0)
    return {s: ref * weights.get(s, 1.0) / n for s, n in counts.items()}, ref_subset, ref


def balance(counts: dict[str, int], weights: dict[str, float] | None = None,
            accept: Callable[[dict[str, int]], bool] | None = None) -> tuple[dict[str, int], list[Step]]:
    """Relative repeats: the subset with the most images per unit of weight gets 1.

    A weight other than 1 asks for a share of the epoch; when rounding to whole repeats misses
    that share by more than SHARE_TOLERANCE (or `accept` refuses the result), every subset's
    repeats are scaled up by the smallest whole factor that meets it: a fractional weight such as
    0.3 is reached through more repeats on the other subsets, never by rounding it away."""
    weights = weights or {}
    live = {s: n for s, n in counts.items() if n > 0}
    if not live:
        return {}, []
    exact, ref_subset, ref = exact_repeats(live, weights)
    m, repeats = _finest(live, weights, exact, accept)
    steps: list[Step] = []
    for s, n in live.items():
        w = weights.get(s, 1.0)
        wtxt = f" x weight {fmt(w)}" if w != 1.0 else ""
        mtxt = f" x {m} (finer, for the weights)" if m > 1 else ""
        steps.append(Step(
            f"balanced repeats[{s}]", repeats[s], RULE,
            f"reference {fmt(ref)} ({ref_subset}: {live[ref_subset]} images / weight {fmt(weights.get(ref_subset, 1.0))})"
            f"{wtxt} / {n} images{mtxt} = {fmt(exact[s] * m)} -> {repeats[s]} ({n} x {repeats[s]} = {n * repeats[s]})",
        ))
    return repeats, steps


def _rounded(exact: dict[str, float], m: int) -> dict[str, int]:
    return {s: max(1, round_half_up(x * m)) for s, x in exact.items()}


def share_error(counts: dict[str, int], weights: dict[str, float], repeats: dict[str, int]) -> float:
    """Largest relative miss of a weighted subset's share of the epoch (balanced, the share is w / sum(w))."""
    total_w = sum(weights.get(s, 1.0) for s in counts)
    seen = images_per_epoch(counts, repeats)
    errs = [abs(counts[s] * repeats[s] / seen - weights[s] / total_w) / (weights[s] / total_w)
            for s in counts if weights.get(s, 1.0) != 1.0]
    return max(errs, default=0.0)


def _finest(counts, weights, exact, accept) -> tuple[int, dict[str, int]]:
    """The smallest multiplier whose rounded repeats meet the weights (and `accept`); else the best one."""
    best = None
    for m in range(1, MAX_FINER + 1):
        repeats = _rounded(exact, m)
        err = share_error(counts, weights, repeats)
        ok = accept is None or accept(repeats)
        if ok and err <= SHARE_TOLERANCE:
            return m, repeats
        score = (not ok, err)
        if best is None or score < best[0]:
            best = (score, m, repeats)
    return best[1], best[2]


def images_per_epoch(counts: dict[str, int], repeats: dict[str, int]) -> int:
    """T in seed 001: the sum of images x repeats."""
    return sum(counts[s] * r for s, r in repeats.items())


def t_arithmetic(counts: dict[str, int], repeats: dict[str, int]) -> str:
    parts = " + ".join(f"({counts[s]} x {r})" for s, r in repeats.items())
    return f"{parts} = {images_per_epoch(counts, repeats)}"


def scale_factor(t_balanced: int, target: float) -> tuple[int, str]:
    """Multiply every subset's repeats by k so T comes near the target (never below 1)."""
    if t_balanced >= target:
        return 1, f"T = {t_balanced} already reaches the target {fmt(target)}: x 1"
    k = max(1, round_half_up(target / t_balanced))
    return k, f"target {fmt(target)} / T {t_balanced} = {fmt(target / t_balanced)} -> x {k}"
