"""Back views in the plan: a subset of back views is kept under doctor's limit, not balanced up.

Balancing gives every subset about the same images x repeats (seed 001), which is right for
outfits and wrong for camera angles: 8 back views beside 22 front views would become half of
every epoch, and seed 000 saw back views with high repeats turn the character around. So a
subset made mostly of back views gets the weight that puts the back-view share of an epoch
just under [doctor].max_back_share: the number `kiln doctor` checks.

With balancing, the images x repeats of a subset are proportional to its weight, so the share
of back views is sum(w x b/n) / sum(w) over the subsets (b back views among n images).
"""

from __future__ import annotations

from dataclasses import dataclass

from lorakiln.planning.explain import Step, fmt, pct

BACK = frozenset({"from_behind", "back", "facing_away", "rear_view", "back_view"})
SIDE = frozenset({"from_side", "profile", "side_view"})
VIEW_SUBSET_SHARE = 0.5  # a subset at least this much back views is a view subset, not an outfit
AIM = 0.9  # aim this far under the limit, so rounding repeats to whole numbers stays under it
RULE = "a view subset is kept under doctor's back-view limit ([doctor].max_back_share), not balanced up"


@dataclass(frozen=True)
class ViewCap:
    back: dict[str, int]  # back-view images per subset
    limit: float  # [doctor].max_back_share


def view_subsets(counts: dict[str, int], back: dict[str, int]) -> list[str]:
    return [s for s, n in counts.items() if n and back.get(s, 0) / n >= VIEW_SUBSET_SHARE]


def planned_share(counts: dict[str, int], back: dict[str, int], repeats: dict[str, int]) -> float:
    """Back views' share of the images an epoch shows (images x repeats)."""
    seen = sum(counts[s] * r for s, r in repeats.items())
    return sum(back.get(s, 0) * r for s, r in repeats.items()) / seen if seen else 0.0


def weight_scale(seen: dict[str, float], backs: dict[str, float], views: list[str], target: float) -> float | None:
    """The factor on the view subsets' images-seen that brings the back share to `target`.

    `seen` and `backs` are images x repeats (or weights) per subset, all of them and the back
    views among them. None when the other subsets alone already exceed the target."""
    other_seen = sum(v for s, v in seen.items() if s not in views)
    other_back = sum(v for s, v in backs.items() if s not in views)
    view_seen = sum(seen[s] for s in views)
    view_back = sum(backs.get(s, 0.0) for s in views)
    num, den = target * other_seen - other_back, view_back - target * view_seen
    if num <= 0 or den <= 0:
        return None
    return num / den


def cap_weights(counts: dict[str, int], weights: dict[str, float], cap: ViewCap) -> tuple[dict[str, float], list[Step], list[str]]:
    """Weights with the view subsets the user did not weight set to stay under the limit."""
    views = [s for s in view_subsets(counts, cap.back) if s not in weights]
    w = {s: weights.get(s, 1.0) for s in counts}
    backs = {s: w[s] * cap.back.get(s, 0) / counts[s] for s in counts}
    share = sum(backs.values()) / sum(w.values())
    if len(counts) < 2 or not views or share <= cap.limit:
        return dict(weights), [], []
    target = cap.limit * AIM
    k = weight_scale(w, backs, views, target)
    if k is None:
        others = [s for s in counts if s not in views]
        if sum(backs[s] for s in others) <= target * sum(w[s] for s in others):
            return dict(weights), [], []
        return dict(weights), [], [
            f"back views outside the view subsets ({', '.join(views)}) alone are more than "
            f"{pct(cap.limit)} of an epoch: move them too (`kiln subset move --tag from_behind --to "
            f"{views[0]}`)"]
    out = dict(weights)
    steps = []
    for s in views:
        out[s] = w[s] * k
        steps.append(Step(f"weight[{s}]", round(out[s], 4), RULE,
                          f"{cap.back.get(s, 0)} of {counts[s]} images are back views; balanced they would be "
                          f"{pct(share)} of an epoch, aim {pct(target)} (limit "
                          f"{pct(cap.limit)}): weight {fmt(w[s])} x {fmt(k)}"))
    return out, steps, []
