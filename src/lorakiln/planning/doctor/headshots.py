"""Enough headshots and close-ups (seed 000 iteration 1: portrait/upper_body crops made the
difference; seed 003 'Headshots': the face is the most recognisable part)."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, pct
from lorakiln.planning.doctor.views import BACK

CLOSE = {"portrait", "close-up", "upper_body", "face", "headshot", "headshot_portrait", "bust", "bust_portrait"}


@RULES.register("headshots")
def headshots(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    close = ds.with_any(CLOSE)
    share = ds.share(close)  # of images x repeats: a crops subset that `kiln plan` balances up counts as such
    if share >= cfg.min_headshot_share:
        return []
    # the best sources for new crops: large front-facing images that are not close-ups already
    close_ids = {it.id for it in close}
    candidates = sorted((it for it in ds.items if it.id not in close_ids and not it.has_any(BACK)),
                        key=lambda it: -(it.width or 0) * (it.height or 0))
    return [Finding(
        "headshots", "warning",
        f"only {len(close)} of {len(ds.items)} images ({pct(share)} of an epoch) are portraits, close-ups or upper-body "
        f"shots (wanted at least {pct(cfg.min_headshot_share)}): face details will be weak",
        [it.id for it in candidates],
        "crop the face / upper body out of the largest front views listed here (best first) and import the "
        "crops as another subset (`kiln import CROPS --subset headshots`), then `kiln tag` and `kiln plan`",
        {"close_images": len(close), "images": len(ds.items), "share": round(share, 4)})]
