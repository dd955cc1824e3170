"""A picture: one or two figures, a framing, a background and a drawing style, rendered at
`supersample` times the output size and box-downsampled (anti-aliasing). The renderer knows
where it drew each figure, so every picture comes with per-figure boxes in output pixels:
the person (all its drawn pixels), the head (head, hair on the head, headwear) and the half
body (from the top of the person down to the hips)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image

from lorakiln.toyworld import vocab
from lorakiln.toyworld.background import render_background
from lorakiln.toyworld.render import Look, apply_style, draw_figure

HIPS = 2.3  # figure units: where a half-body box ends


@dataclass(frozen=True)
class Scene:
    figures: tuple[Look, ...]
    framing: str = "full_body"
    background: str = "white"
    background_colour: str | None = None  # simple backgrounds: a key of vocab.BACKGROUND_COLOURS
    style: str = "flat"
    seed: int = 0  # places the figures and the background's details
    size: int = 64
    supersample: int = 2

    def check(self) -> None:
        if not 1 <= len(self.figures) <= 2:
            raise ValueError(f"a scene has one or two figures, not {len(self.figures)}")
        if self.framing not in vocab.FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}; known: {', '.join(vocab.FRAMINGS)}")
        if len(self.figures) == 2 and self.framing not in vocab.TWO_FIGURE_FRAMINGS:
            raise ValueError(f"two-figure scenes are framed {', '.join(vocab.TWO_FIGURE_FRAMINGS)}, "
                             f"not {self.framing}")
        if self.style not in vocab.STYLES:
            raise ValueError(f"unknown style {self.style!r}; known: {', '.join(vocab.STYLES)}")
        if self.size < 16 or self.supersample < 1:
            raise ValueError(f"size must be >= 16 and supersample >= 1 (got {self.size}, {self.supersample})")


@dataclass(frozen=True)
class FigureBoxes:
    """Boxes (x0, y0, x1, y1) in output pixels, x1/y1 exclusive, clipped to the picture."""
    character: str | None
    person: tuple[int, int, int, int]
    head: tuple[int, int, int, int]
    halfbody: tuple[int, int, int, int]


def placement(scene: Scene) -> list[tuple[float, float, float]]:
    """(centre x, crown y, pixels per unit) of each figure on the render canvas."""
    r = scene.size * scene.supersample
    crown, units = vocab.FRAMINGS[scene.framing]
    s = r * (1 - crown) / units
    rng = random.Random(f"toyworld-place/{scene.seed}")
    if len(scene.figures) == 1:
        return [(r * (0.5 + rng.uniform(-0.06, 0.06)), r * crown, s)]
    gap = rng.uniform(0.22, 0.26)
    return [(r * (0.5 - gap), r * crown, s), (r * (0.5 + gap), r * crown, s)]


def _out_box(b: list[float], k: int, n: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, math.floor(b[0] / k)), max(0, math.floor(b[1] / k))
    x1, y1 = min(n, math.ceil(b[2] / k)), min(n, math.ceil(b[3] / k))
    return (x0, y0, max(x0, x1), max(y0, y1))


def render_scene(scene: Scene) -> tuple[Image.Image, list[FigureBoxes]]:
    scene.check()
    k, n = scene.supersample, scene.size
    r = n * k
    canvas = render_background(scene.background, scene.background_colour, r,
                               random.Random(f"toyworld-bg/{scene.seed}")).convert("RGBA")
    places = placement(scene)
    boxes = []
    for look, (cx, top, s) in zip(scene.figures, places):
        layer = Image.new("RGBA", (r, r), (0, 0, 0, 0))
        bounds = draw_figure(layer, look, cx, top, s, scene.style)
        layer = apply_style(layer, scene.style, [(cx, top, s)])
        drawn = layer.getchannel("A").getbbox() or (0, 0, 0, 0)
        canvas.alpha_composite(layer)
        head = [max(drawn[0], bounds["head"][0]), max(drawn[1], bounds["head"][1]),
                min(drawn[2], bounds["head"][2]), min(drawn[3], bounds["head"][3])]
        half = [drawn[0], drawn[1], drawn[2], min(drawn[3], top + HIPS * s)]
        boxes.append(FigureBoxes(look.character, _out_box(list(drawn), k, n), _out_box(head, k, n),
                                 _out_box(half, k, n)))
    img = canvas.convert("RGB")
    if k > 1:
        img = img.reduce(k)
    return img, boxes
