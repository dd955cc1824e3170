"""Repeats per subset: balance images x repeats across subsets (seed 001 'Multiple Concepts').

With equal weights every subset ends up showing about as many images per epoch as the
largest one (which gets 1 repeat): 20, 33, 100, 50 images -> 5, 3, 1, 2 repeats. A weight
scales a subset's share (weight 2 -> about twice the images seen).
"""

from __future__ import annotations

from lorakiln.planning.explain import Step, fmt, round_half_up

RULE = "balance images x repeats across subsets (seed 001 'Multiple Concepts')"


def balance(counts: dict[str, int], weights: dict[str, float] | None = None) -> tuple[dict[str, int], list[Step]]:
    """Relative repeats: the subset with the most images per unit of weight gets 1."""
    weights = weights or {}
    live = {s: n for s, n in counts.items() if n > 0}
    if not live:
        return {}, []
    ref_subset = max(live, key=lambda s: live[s] / weights.get(s, 1.0))
    ref = live[ref_subset] / weights.get(ref_subset, 1.0)
    repeats: dict[str, int] = {}
    steps: list[Step] = []
    for s, n in live.items():
        w = weights.get(s, 1.0)
        exact = ref * w / n
        repeats[s] = max(1, round_half_up(exact))
        wtxt = f" x weight {fmt(w)}" if w != 1.0 else ""
        steps.append(Step(
            f"balanced repeats[{s}]", repeats[s], RULE,
            f"reference {fmt(ref)} ({ref_subset}: {live[ref_subset]} images / weight {fmt(weights.get(ref_subset, 1.0))})"
            f"{wtxt} / {n} images = {fmt(exact)} -> {repeats[s]} ({n} x {repeats[s]} = {n * repeats[s]})",
        ))
    return repeats, steps


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
