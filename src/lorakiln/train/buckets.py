"""Aspect-ratio bucketing: which (width, height) each image trains at, and how it gets there.

Pure arithmetic on sizes (no pixels). Buckets keep about the same area as resolution²,
with sides that are multiples of `steps` between `min_reso` and `max_reso`, as kohya's
BucketManager does; with `no_upscale` an image small enough gets a bucket of its own size.
An image is resized to cover its bucket (aspect kept), then cropped to it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

from PIL import Image

from lorakiln.core.errors import ConfigError

Size = tuple[int, int]


@dataclass(frozen=True)
class BucketSpec:
    resolution: Size
    min_reso: int
    max_reso: int
    steps: int
    no_upscale: bool = False
    enabled: bool = True

    @property
    def max_area(self) -> int:
        return self.resolution[0] * self.resolution[1]


def resolve_spec(cfg, default_resolution: int, arch: str, source: str = "[train.buckets]") -> BucketSpec:
    """BucketConfig + the family's defaults -> a checked BucketSpec."""
    reso = cfg.resolution or default_resolution
    w, h = (reso, reso) if isinstance(reso, int) else reso
    if arch == "sdxl" and cfg.bucket_reso_steps % 32:
        raise ConfigError(source, f"bucket_reso_steps {cfg.bucket_reso_steps} must be a multiple of 32 for SDXL")
    if cfg.bucket_reso_steps % 8:
        raise ConfigError(source, f"bucket_reso_steps {cfg.bucket_reso_steps} must be a multiple of 8 (the VAE factor)")
    if w % 8 or h % 8:
        raise ConfigError(source, f"resolution {w}x{h} must be a multiple of 8 on both sides")
    max_reso = cfg.max_bucket_reso or max(w, h) * 2
    min_reso = cfg.min_bucket_reso
    if "min_bucket_reso" not in cfg.model_fields_set:  # the default 256 is for 512 px and larger bases
        min_reso = min(min_reso, min(w, h))
    if min_reso > min(w, h) or max_reso < max(w, h):
        raise ConfigError(source, f"min_bucket_reso {min_reso} .. max_bucket_reso {max_reso} "
                                  f"must contain the resolution {w}x{h}")
    return BucketSpec((w, h), min_reso, max_reso, cfg.bucket_reso_steps, cfg.bucket_no_upscale, cfg.enable_bucket)


def bucket_resolutions(spec: BucketSpec) -> list[Size]:
    """All buckets: the square one plus every (w, h) of about max_area along the side range."""
    step = spec.steps
    side = int(math.sqrt(spec.max_area)) // step * step
    out = {(side, side)}
    w = spec.min_reso
    while w <= spec.max_reso:
        h = min(spec.max_reso, spec.max_area // w // step * step)
        if h >= spec.min_reso:
            out.add((w, h))
            out.add((h, w))
        w += step
    return sorted(out)


def _ar_error(size: Size, bucket: Size) -> float:
    return abs(math.log(size[0] / size[1]) - math.log(bucket[0] / bucket[1]))


def nearest_bucket(size: Size, buckets: list[Size]) -> Size:
    """The bucket whose aspect ratio is closest (in log space); ties go to the larger area."""
    return min(buckets, key=lambda b: (_ar_error(size, b), -b[0] * b[1]))


def own_bucket(size: Size, spec: BucketSpec) -> Size:
    """no_upscale: shrink to max_area if larger, then round each side down to the step."""
    w, h = size
    if w * h > spec.max_area:
        s = math.sqrt(spec.max_area / (w * h))
        w, h = w * s, h * s
    return (max(spec.steps, int(w) // spec.steps * spec.steps),
            max(spec.steps, int(h) // spec.steps * spec.steps))


def choose_bucket(size: Size, spec: BucketSpec, buckets: list[Size] | None = None) -> Size:
    if not spec.enabled:
        return spec.resolution
    if spec.no_upscale and size[0] * size[1] <= spec.max_area:
        return own_bucket(size, spec)
    return nearest_bucket(size, buckets if buckets is not None else bucket_resolutions(spec))


def cover_size(size: Size, bucket: Size) -> Size:
    """Resize target that keeps the aspect ratio and covers the bucket on both sides."""
    w, h = size
    s = max(bucket[0] / w, bucket[1] / h)
    return max(bucket[0], round(w * s)), max(bucket[1], round(h * s))


def crop_offset(resized: Size, bucket: Size, rng: random.Random | None = None) -> tuple[int, int]:
    """Top-left corner of the crop: centred, or uniform at random when `rng` is given."""
    dx, dy = resized[0] - bucket[0], resized[1] - bucket[1]
    if rng is None:
        return dx // 2, dy // 2
    return rng.randint(0, dx), rng.randint(0, dy)


_FILTERS = {
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def resample_filter(size: Size, target: Size, mode: str = "auto") -> Image.Resampling:
    """kohya's default: area averaging to downscale, lanczos to upscale."""
    if mode == "auto":
        mode = "area" if target[0] * target[1] < size[0] * size[1] else "lanczos"
    return _FILTERS[mode]


def bucket_info(assigned: list[Size], sizes: list[Size]) -> dict:
    """ss_bucket_info: {"buckets": {i: {"resolution": [w, h], "count": n}}, "mean_img_ar_error": x}."""
    counts = Counter(assigned)
    buckets = {i: {"resolution": list(b), "count": counts[b]} for i, b in enumerate(sorted(counts))}
    errs = [abs(s[0] / s[1] - b[0] / b[1]) for s, b in zip(sizes, assigned)]
    return {"buckets": buckets, "mean_img_ar_error": sum(errs) / len(errs) if errs else 0.0}
