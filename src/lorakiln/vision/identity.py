"""Who is the main character? A pure decision on a difference matrix (CCIP: lower = more alike).

The method, in three steps:

1. medoid: the picture with the most others within the threshold (ties: the smallest summed
   difference to those neighbours). In a set that is mostly one character this is a typical
   picture of that character; a second, smaller character cannot win because it has fewer
   neighbours.
2. core: the medoid and its neighbours within the threshold.
3. each picture's distance to the main character is its *median* difference to the core (itself
   left out); it stays when that median is within the threshold.

Why not OPTICS (what waifuc's CCIPAction uses)? On the small sets a LoRA starts from (20-200
pictures) density clustering needs its minimum-samples and steepness settings tuned, labels
many genuine but unusual pictures (back views, odd framings) as noise, and its result moves
with one picture more or less. The median over a core is deterministic, needs only the one
threshold the model already ships, and one bad pairwise difference (a single odd comparison)
cannot move a picture's median, so a picture is judged against the character as a whole rather
than against one reference picture.

Dominance is judged the way waifuc judges its clusters (its ratio threshold counts clustered
pictures, not noise): the other groups of alike pictures are peeled off the rest, largest
first, by the same medoid + median rule, and the main character must hold at least
`min_share` of the pictures that fall into a group of `MIN_GROUP` or more. Loners (anonymous
figures, off-model pictures) count for nobody, so they do not hide the main character; a
second character of about the same size does. As a floor, the main character must also hold
half that share of all the pictures: a small tight group among many pictures the model finds
unlike each other (a character drawn in very different styles) never makes the filter drop
most of a dataset. Nothing is dropped when the set is too small to
tell (`min_pictures`) or no character dominates: the verdict says why, and every picture stays
(a warning, never a wrong drop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_GROUP = 3  # a group of alike pictures smaller than this is loners, not another character


@dataclass(frozen=True)
class Judgement:
    kept: bool
    difference: float  # median difference to the main character's core (nan when not measured)
    reason: str | None  # why it is dropped; None when kept


@dataclass
class IdentityResult:
    judgements: list[Judgement]
    threshold: float
    medoid: int | None = None  # index of the main character's most typical picture
    core: list[int] = field(default_factory=list)
    skipped: str | None = None  # why nothing was decided (too few pictures, no dominant character)

    @property
    def dropped(self) -> list[int]:
        return [i for i, j in enumerate(self.judgements) if not j.kept]

    @property
    def main(self) -> list[int]:
        """The pictures judged to show the main character."""
        return [i for i, j in enumerate(self.judgements) if j.kept and not np.isnan(j.difference)]


def drop_reason(difference: float, threshold: float) -> str:
    """The detail of a drop reason; the filter prefixes it with `identity: `."""
    return f"{difference:.3f} from the main character (threshold {threshold:.3g})"


def find_main_character(diff: np.ndarray, threshold: float, *, min_pictures: int = 15,
                        min_share: float = 0.6) -> IdentityResult:
    """Judge every picture of an n x n difference matrix against the main character (see module doc)."""
    d = _checked(diff)
    n = len(d)
    if not threshold > 0:
        raise ValueError(f"threshold must be above 0, not {threshold}")
    if n < max(min_pictures, 2):
        return _keep_all(n, threshold, f"{n} pictures: at least {max(min_pictures, 2)} are needed to tell "
                                       "the main character from the others; nothing dropped")
    alive = np.ones(n, dtype=bool)
    medoid, core = _core(d, threshold, alive)
    median = _median_to(d, core)
    main = median <= threshold
    rivals = _rival_groups(d, threshold, alive & ~main)
    size = int(main.sum())
    grouped = size + sum(rivals)
    share = size / grouped
    if share < min_share or size < n * min_share / 2:
        why = (f"it holds {size} of the {grouped} pictures that fall into groups (other groups: "
               f"{sorted(rivals, reverse=True)[:5]}; {share:.0%}, below {min_share:.0%})" if share < min_share
               else f"it holds {size} of all {n} pictures ({size / n:.0%}, below {min_share / 2:.0%})")
        result = _keep_all(n, threshold, f"no dominant character: the largest group of alike pictures: {why}; "
                                         "nothing dropped")
        result.medoid, result.core = medoid, core
        return result
    judgements = [Judgement(bool(ok), float(m), None if ok else drop_reason(float(m), threshold))
                  for ok, m in zip(main, median)]
    return IdentityResult(judgements, threshold, medoid, core)


def _core(d: np.ndarray, threshold: float, alive: np.ndarray) -> tuple[int, list[int]]:
    """Among the `alive` pictures: the medoid (most neighbours within the threshold, then the
    tightest) and its neighbourhood."""
    near = (d <= threshold) & alive[None, :] & alive[:, None]
    np.fill_diagonal(near, False)
    counts = near.sum(axis=1)
    spread = np.where(near, d, 0.0).sum(axis=1)
    medoid = int(min(np.flatnonzero(alive), key=lambda i: (-counts[i], spread[i], i)))
    core = [medoid, *np.flatnonzero(near[medoid]).tolist()]
    return medoid, sorted(core)


def _median_to(d: np.ndarray, core: list[int]) -> np.ndarray:
    """Each picture's median difference to the core pictures other than itself (inf: none left)."""
    out = np.full(len(d), np.inf)
    for i in range(len(d)):
        cols = [c for c in core if c != i]
        if cols:
            out[i] = np.median(d[i, cols])
    return out


def _rival_groups(d: np.ndarray, threshold: float, alive: np.ndarray, smallest: int = MIN_GROUP) -> list[int]:
    """Sizes of the other groups of alike pictures, peeled off largest first the way the main one
    was; pictures alike to fewer than `smallest - 1` others are loners and count for nobody."""
    alive, sizes = alive.copy(), []
    while alive.sum() >= smallest:
        _, core = _core(d, threshold, alive)
        if len(core) < smallest:
            break
        members = alive & (_median_to(d, core) <= threshold)
        members[core] = True
        sizes.append(int(members.sum()))
        alive &= ~members
    return sizes


def _keep_all(n: int, threshold: float, why: str) -> IdentityResult:
    return IdentityResult([Judgement(True, float("nan"), None) for _ in range(n)], threshold, skipped=why)


def _checked(diff) -> np.ndarray:
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"a square difference matrix is needed, not shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("the difference matrix has non-finite values")
    return (d + d.T) / 2  # a learned metric need not be exactly symmetric
