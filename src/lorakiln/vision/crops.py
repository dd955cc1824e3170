"""Close-up crops of one person: where a portrait, upper-body or cowboy-shot crop lies, from the
person, head and half-body boxes a detector found (or the toy world's renderer knows).

Pure geometry, no pictures: `plan_crops(size, person, head, halfbody)` gives each framing's box
or the reason it is skipped. The rules, in the picture's pixels (x1/y1 exclusive):

- **portrait** (head and shoulders): from a tenth of a head above the head box to half a head
  below it, as wide as 1.6 heads, at least square (waifuc's ThreeStageSplit takes the head box
  x1.5 as a square; ours keeps the shoulders a portrait tag implies). Needs a head box.
  (A chibi's head is a quarter of her height, so her portrait can be wider than her upper body.)
- **upper_body** (to the waist): the half-body box when there is one, else the top 47 % of the
  person box (the waist of a 6-7.5-head figure, and of the toy world's chibis at 49 %).
- **cowboy_shot** (to mid-thigh): the top 70 % of the person box.

Each box gets `pad` of its size on every side, is widened (never narrowed) until its aspect
ratio is within `max_aspect` (buckets train between 1:2 and 2:1), then shifted (not shrunk) to lie
inside the picture, and clipped only where it is larger than the picture. A crop is skipped,
with the reason, when its short side is under `min_side` pixels (it would be upscaled far past
what the bucket needs), when it covers `max_cover` or more of the picture (the picture already
is that framing), or when the person box ends above the crop's cut (the figure is already cut
there, so the crop would show nothing less; or the person box touches the picture's lower edge,
so the figure's height, and where her waist or thighs are, is unknown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Box = tuple[int, int, int, int]
FRAMINGS = ("portrait", "upper_body", "cowboy_shot")


@dataclass(frozen=True)
class CropRules:
    pad: float = 0.06  # of the crop's size, each side
    max_aspect: float = 2.0  # long side / short side
    min_side: int = 256  # pixels on the short side
    max_cover: float = 0.8  # of the picture's area: already this framing
    upper_body_cut: float = 0.47  # of the person's height, without a half-body box
    cowboy_cut: float = 0.70


@dataclass(frozen=True)
class CropPlan:
    framing: str
    box: Box | None  # None: skipped
    reason: str = ""  # why skipped


def _raw_box(framing: str, size: tuple[int, int], person: Box, head: Box | None, halfbody: Box | None,
             rules: CropRules):
    px0, py0, px1, py1 = person
    cut_by_edge = py1 >= size[1] - max(1, round(0.01 * size[1]))  # the figure's height is unknown
    ph = py1 - py0
    if framing == "portrait":
        if head is None:
            return None, "no head found"
        hx0, hy0, hx1, hy1 = head
        hh, cx = hy1 - hy0, (hx0 + hx1) / 2
        top, bottom = hy0 - 0.1 * hh, hy1 + 0.5 * hh
        half = max(0.8 * (hx1 - hx0), (bottom - top) / 2)
        return (cx - half, top, cx + half, bottom), ""
    edge = "the figure is cut by the picture's lower edge: already this framing or closer"
    if framing == "upper_body":
        if halfbody is not None and not (cut_by_edge and halfbody[3] >= py1 - 1):
            return tuple(float(v) for v in halfbody), ""
        return (None, edge) if cut_by_edge else ((px0, py0, px1, py0 + rules.upper_body_cut * ph), "")
    if framing == "cowboy_shot":
        return (None, edge) if cut_by_edge else ((px0, py0, px1, py0 + rules.cowboy_cut * ph), "")
    raise ValueError(f"unknown framing {framing!r}: one of {', '.join(FRAMINGS)}")


def _fit(box, size: tuple[int, int], rules: CropRules) -> Box:
    """Pad, widen to the aspect limit, shift inside the picture, clip what is still outside."""
    w, h = size
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - rules.pad * bw, x1 + rules.pad * bw, y0 - rules.pad * bh, y1 + rules.pad * bh
    bw, bh = x1 - x0, y1 - y0
    if bh > rules.max_aspect * bw:
        grow = (bh / rules.max_aspect - bw) / 2
        x0, x1 = x0 - grow, x1 + grow
    elif bw > rules.max_aspect * bh:
        grow = (bw / rules.max_aspect - bh) / 2
        y0, y1 = y0 - grow, y1 + grow
    x0, x1 = _shift_inside(x0, x1, w)
    y0, y1 = _shift_inside(y0, y1, h)
    # outward to whole pixels, so rounding never breaks the aspect limit or cuts the head
    return (max(0, math.floor(x0 + 1e-6)), max(0, math.floor(y0 + 1e-6)),
            min(w, math.ceil(x1 - 1e-6)), min(h, math.ceil(y1 - 1e-6)))


def _shift_inside(a: float, b: float, limit: int) -> tuple[float, float]:
    if b - a >= limit:
        return 0.0, float(limit)
    if a < 0:
        a, b = 0.0, b - a
    if b > limit:
        a, b = a - (b - limit), float(limit)
    return a, b


def plan_crop(framing: str, size: tuple[int, int], person: Box, head: Box | None = None,
              halfbody: Box | None = None, rules: CropRules = CropRules()) -> CropPlan:
    """One framing's crop of one person, or why there is none."""
    raw, why = _raw_box(framing, size, person, head, halfbody, rules)
    if raw is None:
        return CropPlan(framing, None, why)
    if framing != "portrait" and person[3] <= raw[3] + 0.02 * (person[3] - person[1]):
        return CropPlan(framing, None, "the figure is already cut there")
    box = _fit(raw, size, rules)
    bw, bh = box[2] - box[0], box[3] - box[1]
    if min(bw, bh) < rules.min_side:
        return CropPlan(framing, None, f"too small: {min(bw, bh)} px on the short side (minimum {rules.min_side})")
    if bw * bh >= rules.max_cover * size[0] * size[1]:
        return CropPlan(framing, None, f"covers {bw * bh / (size[0] * size[1]):.0%} of the picture: already a "
                                       f"{framing.replace('_', ' ')} or closer")
    return CropPlan(framing, box)


def plan_crops(size: tuple[int, int], person: Box, head: Box | None = None, halfbody: Box | None = None,
               framings: tuple[str, ...] = FRAMINGS, rules: CropRules = CropRules()) -> list[CropPlan]:
    """Every asked framing's crop of one person, in the order asked."""
    return [plan_crop(f, size, person, head, halfbody, rules) for f in framings]
