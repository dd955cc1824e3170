"""Back and side views (seed 000: back views with high repeats take over the LoRA;
seed 001: include other angles so the model does not have to guess them)."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, pct

BACK = {"from_behind", "back", "facing_away", "rear_view", "back_view"}
SIDE = {"from_side", "profile", "side_view"}


@RULES.register("views")
def views(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    """Share of images x repeats showing the character from behind or from the side."""
    back = ds.with_any(BACK)
    side = ds.with_any(SIDE)
    total = ds.weight
    back_share = sum(it.repeats for it in back) / total
    side_share = sum(it.repeats for it in side) / total
    data = {"back_images": len(back), "side_images": len(side),
            "back_share": round(back_share, 4), "side_share": round(side_share, 4)}
    out = []
    if back_share > cfg.max_back_share:
        out.append(Finding(
            "views", "warning",
            f"back views are {pct(back_share)} of the images an epoch shows (images x repeats; limit "
            f"{pct(cfg.max_back_share)}): the LoRA will tend to turn the character around (seed 000)",
            [it.id for it in back],
            "give the back views fewer repeats: move them to their own subset "
            "(`kiln subset move --tag from_behind --to back`) and weight it down "
            "(`kiln plan --weight back=0.3`), or drop some; add from_behind to negative prompts meanwhile",
            data))
    if not back and not side:
        out.append(Finding(
            "views", "info", "no back or side views: the model has to guess how the character looks from "
            "other angles (seed 001)", [],
            "add a few from_side / from_behind images (with low repeats)", data))
    return out
