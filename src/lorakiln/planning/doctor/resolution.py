"""Images smaller than the training resolution: the trainer upscales them (blurry detail) or,
with bucket_no_upscale, trains them at a smaller bucket (seed 001 'Improving the Quality')."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding


@RULES.register("resolution")
def resolution(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    if ds.resolution is None:
        return [Finding("resolution", "info", "training resolution unknown: image sizes not checked", [],
                        "set [train.buckets].resolution (or pass --resolution)")]
    w, h = ds.resolution
    floor = w * h * cfg.min_area_ratio
    small = [it for it in ds.items if it.width and it.height and it.width * it.height < floor]
    unknown = [it.id for it in ds.items if not (it.width and it.height)]
    out = []
    if small:
        small.sort(key=lambda it: it.width * it.height)
        out.append(Finding(
            "resolution", "warning",
            f"{len(small)} images have fewer pixels than {cfg.min_area_ratio:g} x {w}x{h} "
            f"(smallest: {small[0].width}x{small[0].height}): they will be upscaled for training",
            [it.id for it in small],
            "upscale them first (an anime ESRGAN model, seed 001) or drop them with a minimum size "
            "(`kiln filter`)",
            {"count": len(small), "resolution": [w, h], "min_area": int(floor)}))
    if unknown:
        out.append(Finding("resolution", "info", f"{len(unknown)} images have no recorded size", unknown,
                           "sizes are recorded by `kiln fetch` and `kiln import`; re-import these images"))
    return out
