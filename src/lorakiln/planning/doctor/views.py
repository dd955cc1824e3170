"""Back and side views (seed 000: back views with high repeats take over the LoRA;
seed 001: include other angles so the model does not have to guess them). Measured on the
images an epoch shows (images x repeats) with the repeats `kiln plan` gives, which keeps a
subset of back views under this limit by itself."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, Item, pct
from lorakiln.planning.views import AIM, BACK, SIDE, view_subsets, weight_scale

__all__ = ["BACK", "SIDE", "views"]


@RULES.register("views")
def views(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    """Share of images x repeats showing the character from behind or from the side."""
    back = ds.with_any(BACK)
    side = ds.with_any(SIDE)
    back_share, side_share = ds.share(back), ds.share(side)
    data = {"back_images": len(back), "side_images": len(side),
            "back_share": round(back_share, 4), "side_share": round(side_share, 4)}
    out = []
    if back_share > cfg.max_back_share:
        out.append(Finding(
            "views", "warning",
            f"back views are {pct(back_share)} of the images an epoch shows (images x repeats; limit "
            f"{pct(cfg.max_back_share)}): the LoRA will tend to turn the character around (seed 000)",
            [it.id for it in back], _fix(ds, back, cfg.max_back_share), data))
    elif ds.written_repeats and (written := _written_share(ds, back)) > cfg.max_back_share:
        out.append(Finding(
            "views", "warning",
            f"the repeats in project.toml make back views {pct(written)} of an epoch (limit "
            f"{pct(cfg.max_back_share)}); `kiln plan` makes them {pct(back_share)}",
            [it.id for it in back], "run `kiln plan` before training (it writes the new repeats)",
            {**data, "written_back_share": round(written, 4)}))
    if not back and not side:
        out.append(Finding(
            "views", "info", "no back or side views: the model has to guess how the character looks from "
            "other angles (seed 001)", [],
            "add a few from_side / from_behind images (with low repeats)", data))
    return out


def _written_share(ds: Dataset, back: list[Item]) -> float:
    r = ds.written_repeats or {}
    seen = sum(r.get(it.subset, it.repeats) for it in ds.items)
    return sum(r.get(it.subset, it.repeats) for it in back) / seen


def _fix(ds: Dataset, back: list[Item], limit: float) -> str:
    """What gets the share under the limit from here: a move, a lower weight, or lower repeats."""
    counts, backs, seen, back_seen, repeats = {}, {}, {}, {}, {}
    for it in ds.items:
        counts[it.subset] = counts.get(it.subset, 0) + 1
        seen[it.subset] = seen.get(it.subset, 0) + it.repeats
        repeats[it.subset] = it.repeats
    for it in back:
        backs[it.subset] = backs.get(it.subset, 0) + 1
        back_seen[it.subset] = back_seen.get(it.subset, 0) + it.repeats
    subsets = view_subsets(counts, backs)
    k = weight_scale(seen, back_seen, subsets, limit * AIM) if subsets else None
    if k is None:  # back views mixed into other subsets: only a subset of their own can be weighted
        return ("move them to their own subset (`kiln subset move --tag from_behind --to back`), then `kiln plan` "
                "(it keeps a subset of back views under this limit), or drop some; add from_behind to negative "
                "prompts meanwhile")
    weighted = [s for s in subsets if s in ds.weights]
    if weighted:
        flags = " ".join(f"--weight {s}={ds.weights[s] * k:.2g}" for s in weighted)
        return (f"your [plan].weights give {', '.join(weighted)} too much: `kiln plan {flags}`, or remove the "
                "weight (then `kiln plan` keeps a subset of back views under the limit by itself)")
    new = ", ".join(f"{s} = {max(1, int(repeats[s] * k))}" for s in subsets)
    return (f"the repeats set by hand in [export].repeats give the back views too much: lower them ({new}), or "
            "`kiln plan --force` replaces them with planned ones (which stay under the limit)")
