"""The body below the head: legs, outfit, arms, in figure units (see pen.py). Shoulders are at
y=1.1, the waist at 2.05, the feet end at 4.0. Side views squeeze the body (pen.sx) and show one
arm; back views show the back of the outfit (the sailor collar's flap, the hood)."""

from __future__ import annotations

from lorakiln.toyworld.pen import Pen, shade
from lorakiln.toyworld.vocab import RGB

WHITE: RGB = (250, 250, 250)
DARK_SUIT: RGB = (62, 62, 74)
SHORTS: RGB = (38, 38, 58)
SHOES: RGB = (104, 58, 30)
NECKERCHIEF: RGB = (222, 32, 48)


def _legs(pen: Pen, skin: RGB, top: float, colour: RGB | None = None) -> None:
    k = pen.sx
    leg = colour or skin
    for sign in (-1, 1):
        x0, x1 = sorted((sign * 0.24 * k, sign * 0.05 * k))
        pen.rect((x0, top, x1, 3.82), leg)


def _feet(pen: Pen, colour: RGB) -> None:
    k = pen.sx
    for sign in (-1, 1):
        x0, x1 = sorted((sign * 0.28 * k, sign * 0.02 * k))
        if pen.sx < 1:  # side view: feet point forward
            x0, x1 = x0 + 0.05, x1 + 0.1
        pen.ellipse((x0, 3.74, x1, 4.0), colour)


def _torso(pen: Pen, colour: RGB, bottom: float = 2.1) -> None:
    pen.poly([(-0.42, 1.08), (0.42, 1.08), (0.35, bottom), (-0.35, bottom)], colour, squeeze=True)


def _arms(pen: Pen, sleeve: RGB, hand: RGB, cuff: RGB | None = None) -> None:
    """Both arms from the front or back; one arm along the body from the side."""
    arms = [((0.0, 1.14), (0.17, 1.14), (0.2, 2.06), (0.04, 2.08))] if pen.sx < 1 else \
        [((s * 0.3, 1.12), (s * 0.47, 1.12), (s * 0.63, 2.06), (s * 0.5, 2.1)) for s in (-1, 1)]
    for a in arms:
        pen.poly(list(a), sleeve)
        if cuff is not None:  # gauntlets, from the elbow down
            (x0, _), (x1, _), (x2, y2), (x3, y3) = a
            mid = [((x0 + x3) / 2, 1.6), ((x1 + x2) / 2, 1.6), (x2, y2), (x3, y3)]
            pen.poly(mid, cuff)
        hx, hy = (a[2][0] + a[3][0]) / 2, (a[2][1] + a[3][1]) / 2 + 0.06
        pen.ellipse((hx - 0.09, hy - 0.08, hx + 0.09, hy + 0.1), hand)


def school_uniform(pen: Pen, c: RGB, skin: RGB, view: str) -> None:
    _legs(pen, skin, 2.5)
    _feet(pen, SHOES)
    pen.poly([(-0.36, 2.0), (0.36, 2.0), (0.58, 2.72), (-0.58, 2.72)], c, squeeze=True)
    for x in (-0.3, -0.1, 0.1, 0.3):  # pleats
        pen.line([(x * 0.8 * pen.sx, 2.1), (x * 1.3 * pen.sx, 2.68)], shade(c, 0.7), 0.035)
    _torso(pen, WHITE)
    if view == "from_behind":
        pen.poly([(-0.42, 1.06), (0.42, 1.06), (0.4, 1.58), (-0.4, 1.58)], c)
        pen.line([(-0.34, 1.5), (0.34, 1.5)], WHITE, 0.04)
    elif view == "from_side":
        pen.poly([(-0.32, 1.06), (0.1, 1.06), (0.02, 1.5), (-0.3, 1.5)], c)
        pen.poly([(0.1, 1.2), (0.26, 1.2), (0.18, 1.5)], NECKERCHIEF)
    else:
        pen.poly([(-0.45, 1.06), (0.45, 1.06), (0.42, 1.3), (0.0, 1.58), (-0.42, 1.3)], c)
        pen.poly([(-0.15, 1.08), (0.15, 1.08), (0.0, 1.4)], WHITE, outline=False)
        pen.poly([(-0.13, 1.38), (0.13, 1.38), (0.0, 1.64)], NECKERCHIEF)
    _arms(pen, WHITE, skin)


def dress(pen: Pen, c: RGB, skin: RGB, view: str) -> None:
    _legs(pen, skin, 3.0)
    _feet(pen, shade(c, 0.6))
    pen.poly([(-0.34, 2.0), (0.34, 2.0), (0.72, 3.16), (-0.72, 3.16)], c, squeeze=True)
    _torso(pen, c)
    _arms(pen, skin, skin)
    if view != "from_behind":
        pen.ellipse((-0.1 * pen.sx, 1.96, 0.1 * pen.sx, 2.14), WHITE)  # waist bow


def hoodie(pen: Pen, c: RGB, skin: RGB, view: str) -> None:
    _legs(pen, skin, 2.3)
    _feet(pen, WHITE)
    pen.poly([(-0.34, 2.1), (0.34, 2.1), (0.38, 2.48), (-0.38, 2.48)], SHORTS, squeeze=True)
    pen.poly([(-0.42, 1.08), (0.42, 1.08), (0.38, 2.28), (-0.38, 2.28)], c, squeeze=True)
    if view == "from_behind":
        pen.poly([(-0.34, 1.04), (0.34, 1.04), (0.0, 1.66)], shade(c, 0.72))
    elif view == "front":
        pen.rect((-0.26, 1.78, 0.26, 2.04), shade(c, 0.78))
        for x in (-0.09, 0.09):
            pen.line([(x, 1.16), (x, 1.5)], WHITE, 0.04)
    _arms(pen, c, skin)


def armor(pen: Pen, c: RGB, skin: RGB, view: str) -> None:
    _legs(pen, skin, 2.3, DARK_SUIT)
    k = pen.sx
    for sign in (-1, 1):
        x0, x1 = sorted((sign * 0.27 * k, sign * 0.03 * k))
        pen.rect((x0, 3.0, x1, 3.84), c)
    _feet(pen, shade(c, 0.6))
    pen.poly([(-0.38, 2.02), (0.38, 2.02), (0.5, 2.52), (-0.5, 2.52)], c, squeeze=True)
    _torso(pen, c)
    pen.line([(-0.3 * k, 1.6), (0.3 * k, 1.6)], shade(c, 0.62), 0.05)
    _arms(pen, DARK_SUIT, skin, cuff=c)
    xs = (0.0,) if k < 1 else (-0.44, 0.44)
    for x in xs:  # pauldrons
        pen.ellipse((x - 0.22, 1.02, x + 0.22, 1.34), shade(c, 0.85))


def swimsuit(pen: Pen, c: RGB, skin: RGB, view: str) -> None:
    _legs(pen, skin, 2.1)
    _feet(pen, skin)
    _torso(pen, skin, 2.16)
    pen.poly([(-0.34, 1.3), (0.34, 1.3), (0.36, 2.02), (0.16, 2.34), (-0.16, 2.34), (-0.36, 2.02)], c,
             squeeze=True)
    for x in (-0.22, 0.22):
        pen.line([(x * pen.sx, 1.08), (x * pen.sx, 1.34)], c, 0.07)
    _arms(pen, skin, skin)


DRAW = {"school_uniform": school_uniform, "dress": dress, "hoodie": hoodie, "armor": armor,
        "swimsuit": swimsuit}
