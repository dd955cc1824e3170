"""Deterministic synthetic 'character' pictures: no binary files in the repository.

A figure with a fixed hair/eye colour (the character's core features), a variable outfit
colour, pose offset, view and background, so tagging, dedupe and training have real signal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFilter

HAIR = (176, 38, 89)  # the demo character's fixed magenta hair
EYES = (120, 40, 160)
OUTFITS = {"coat": (40, 40, 48), "swimsuit": (30, 140, 220), "dress": (235, 235, 240)}
BACKGROUNDS = {"white_background": (255, 255, 255), "outdoors": (120, 190, 110), "indoors": (200, 170, 130)}


@dataclass(frozen=True)
class Spec:
    seed: int
    outfit: str = "coat"
    background: str = "white_background"
    view: str = "front"  # front | back | side
    width: int = 512
    height: int = 640
    mono: bool = False
    scale: float = 1.0  # figure size relative to the picture
    shift: float = 0.0  # horizontal offset of the figure, as a fraction of the width
    horizon: float | None = None  # a floor/wall split at this height (fraction), darker below

    def tags(self) -> list[str]:
        t = ["1girl", "solo", "long_hair", "purple_eyes" if self.view != "back" else "from_behind",
             self.outfit, self.background]
        if self.view == "side":
            t.append("from_side")
        if self.mono:
            t += ["monochrome", "greyscale"]
        return t


def make_image(spec: Spec) -> Image.Image:
    rng = random.Random(spec.seed)
    w, h = spec.width, spec.height
    img = Image.new("RGB", (w, h), BACKGROUNDS[spec.background])
    d = ImageDraw.Draw(img)
    if spec.horizon is not None:
        floor = tuple(int(v * 0.7) for v in BACKGROUNDS[spec.background])
        d.rectangle([0, int(h * spec.horizon), w, h], fill=floor)
    for _ in range(6):  # background clutter so images differ
        x, y = rng.randrange(w), rng.randrange(h)
        r = rng.randrange(8, max(9, w // 6))
        c = tuple(max(0, min(255, v + rng.randrange(-60, 60))) for v in BACKGROUNDS[spec.background])
        d.ellipse([x - r, y - r, x + r, y + r], fill=c)
    cx = int(w * (0.5 + spec.shift)) + rng.randrange(-w // 10, w // 10 + 1)
    top = int(h // 8 + rng.randrange(0, h // 16 + 1) + (1.0 - spec.scale) * h * 0.3)
    head = int(w // 7 * spec.scale)
    # hair behind, body, head, eyes
    d.rectangle([cx - head * 1.2, top, cx + head * 1.2, top + head * 4], fill=HAIR)
    d.polygon([(cx - head * 1.4, top + head * 2), (cx + head * 1.4, top + head * 2),
               (cx + head * 1.8, h - h // 10), (cx - head * 1.8, h - h // 10)], fill=OUTFITS[spec.outfit])
    d.ellipse([cx - head, top, cx + head, top + head * 2], fill=(250, 220, 200))
    if spec.view == "back":
        d.ellipse([cx - head, top, cx + head, top + head * 2], fill=HAIR)
    else:
        ex = head // 2 if spec.view == "front" else head // 4
        for sx in ((-ex, ex) if spec.view == "front" else (ex,)):
            d.ellipse([cx + sx - head // 6, top + head * 0.8, cx + sx + head // 6, top + head * 1.2], fill=EYES)
    d.arc([cx - head // 3, top + head * 1.2, cx + head // 3, top + head * 1.6], 20, 160, fill=(150, 60, 60), width=3)
    img = img.filter(ImageFilter.SMOOTH)
    if spec.mono:
        img = img.convert("L").convert("RGB")
    return img


def demo_specs(n: int = 24, seed: int = 0) -> list[Spec]:
    """A small varied set: outfits, backgrounds and views in rough booru proportions."""
    rng = random.Random(seed)
    specs = []
    for i in range(n):
        specs.append(Spec(
            seed=seed * 1000 + i,
            outfit=rng.choice(["coat", "coat", "swimsuit", "dress"]),
            background=rng.choice(list(BACKGROUNDS)),
            view=rng.choice(["front", "front", "front", "side", "back"]),
            width=rng.choice([512, 576, 640]),
            height=rng.choice([640, 704, 768]),
            scale=rng.choice([0.6, 0.8, 1.0, 1.2]),
            shift=rng.choice([-0.22, -0.1, 0.0, 0.1, 0.22]),
            horizon=rng.choice([None, 0.55, 0.7, 0.85]),
        ))
    return specs
