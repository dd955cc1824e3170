"""Drawing one figure: hair, head, face, accessories and (via outfits.py) the body, on a
transparent layer, in one of the drawing styles. The figure's attributes are a `Look`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from lorakiln.toyworld import outfits, vocab
from lorakiln.toyworld.pen import Pen, shade
from lorakiln.toyworld.vocab import RGB

MOUTH: RGB = (150, 50, 60)
LASH: RGB = (36, 26, 40)
RIBBON: RGB = (232, 30, 66)
CLIP: RGB = (255, 222, 40)
HAT: RGB = (226, 196, 128)
HAT_BAND: RGB = (200, 36, 48)
GLASSES: RGB = (28, 28, 34)


@dataclass(frozen=True)
class Look:
    """What one figure shows. `character` is a name tag or None for an anonymous figure."""
    hair_style: str
    hair_colour: str
    eye_colour: str
    skin: str
    outfit: str
    outfit_colour: str
    accessories: tuple[str, ...] = ()
    view: str = "front"
    facing: str = "right"  # side views only: which way the figure looks
    character: str | None = None

    def check(self) -> None:
        for value, table, what in ((self.hair_style, vocab.HAIR_STYLES, "hair style"),
                                   (self.hair_colour, vocab.HAIR_COLOURS, "hair colour"),
                                   (self.eye_colour, vocab.EYE_COLOURS, "eye colour"),
                                   (self.skin, vocab.SKINS, "skin"), (self.view, vocab.VIEWS, "view")):
            if value not in table:
                raise ValueError(f"unknown {what} {value!r}; known: {', '.join(table)}")
        if self.outfit_colour not in vocab.OUTFIT_COLOUR_CHOICES.get(self.outfit, ()):
            raise ValueError(f"no {self.outfit_colour!r} {self.outfit!r} in the toy world; outfits: "
                             f"{ {o: list(c) for o, c in vocab.OUTFIT_COLOUR_CHOICES.items()} }")
        bad = [a for a in self.accessories if a not in vocab.ACCESSORIES]
        if bad:
            raise ValueError(f"unknown accessories {bad}; known: {', '.join(vocab.ACCESSORIES)}")
        if self.facing not in ("left", "right"):
            raise ValueError(f"facing must be left or right, not {self.facing!r}")


def _back_hair(pen: Pen, look: Look, hair: RGB) -> None:
    side, back = look.view == "from_side", look.view == "from_behind"
    dx = -0.14 if side else 0.0
    if look.hair_style == "long_hair":
        w = 0.46 if side else 0.58
        pen.poly([(dx - w, 0.4), (dx + w, 0.4), (dx + w + 0.04, 2.2), (dx, 2.36), (dx - w - 0.04, 2.2)], hair)
    elif look.hair_style == "twintails":
        for sign in ((-1,) if side else (-1, 1)):
            x0 = sign * 0.5 + (dx if side else 0)
            x1 = sign * 0.88 + (dx if side else 0)
            pen.ellipse((min(x0, x1), 0.22, max(x0, x1), 1.95), hair)
    elif look.hair_style == "ponytail" and not back:
        box = (-0.86, 0.02, -0.36, 1.6) if side else (0.3, 0.05, 0.78, 1.62)
        pen.ellipse(box, hair)
    pen.ellipse((-0.52 + dx * 0.5, -0.06, 0.52 + dx * 0.5, 0.98), hair, group="head")


def _ties(pen: Pen, look: Look) -> None:
    """Hair ties of twintails and ponytails: dark bands, part of the hair style."""
    if look.hair_style == "twintails":
        for sign in ((-1,) if look.view == "from_side" else (-1, 1)):
            x = sign * 0.56 + (-0.14 if look.view == "from_side" else 0)
            pen.ellipse((x - 0.08, 0.22, x + 0.08, 0.38), LASH, group="head")
    elif look.hair_style == "ponytail":
        x, y = {"front": (0.4, 0.08), "from_side": (-0.5, 0.1), "from_behind": (0.0, 0.12)}[look.view]
        pen.ellipse((x - 0.08, y - 0.07, x + 0.08, y + 0.09), LASH, group="head")


def _face(pen: Pen, look: Look, style: str) -> None:
    iris = vocab.EYE_COLOURS[look.eye_colour]
    eyes = (0.2,) if look.view == "from_side" else (-0.19, 0.19)
    for x in eyes:
        w = 0.08 if look.view == "from_side" else 0.1
        pen.ellipse((x - w, 0.5, x + w, 0.77), iris, group="head", outline=False)
        pen.ellipse((x - w * 0.45, 0.6, x + w * 0.45, 0.73), shade(iris, 0.4), group="head", outline=False)
        o = 1 if x >= 0 else -1  # the outer corner of the lash line sits lower
        pen.poly([(x - o * (w + 0.03), 0.47), (x + o * (w + 0.04), 0.5), (x + o * (w + 0.03), 0.55),
                  (x - o * (w + 0.02), 0.53)], LASH, group="head", outline=False)
        if style == "glossy":
            pen.ellipse((x - w * 0.7, 0.54, x - w * 0.1, 0.62), (255, 255, 255), group="head", outline=False)
    mx = 0.28 if look.view == "from_side" else 0.0
    pen.line([(mx - 0.06, 0.87), (mx + 0.06, 0.87)], MOUTH, 0.035, group="head")


def _bangs(pen: Pen, look: Look, hair: RGB) -> None:
    dx = -0.06 if look.view == "from_side" else 0.0
    pen.chord((-0.5 + dx, -0.06, 0.5 + dx, 0.9), 180, 360, hair, group="head")
    for x in (-0.36, -0.12, 0.12, 0.36):  # fringe points
        pen.poly([(x + dx - 0.13, 0.4), (x + dx + 0.13, 0.4), (x + dx + 0.02, 0.5)], hair, group="head",
                 outline=False)
    if look.view == "from_side":  # the back of the head is hair
        pen.poly([(-0.52, 0.3), (-0.06, 0.3), (-0.1, 0.62), (-0.3, 0.98), (-0.52, 0.98)], hair, group="head")
        return
    for sign in (-1, 1):  # sidelocks
        x0, x1 = sorted((sign * 0.5, sign * 0.36))
        pen.rect((x0, 0.4, x1, 0.98), hair, group="head")


def _accessories(pen: Pen, look: Look) -> None:
    acc, side, back = set(look.accessories), look.view == "from_side", look.view == "from_behind"
    if "glasses" in acc and not back:
        eyes = (0.2,) if side else (-0.19, 0.19)
        for x in eyes:
            pen.draw.ellipse(pen._box(x - 0.15, 0.48, x + 0.15, 0.8), outline=GLASSES,
                             width=max(1, round(0.045 * pen.s)))
            pen._record("head", [pen._p(x - 0.16, 0.47), pen._p(x + 0.16, 0.81)], 1)
        pen.line([(-0.04, 0.62), (0.04, 0.62)] if not side else [(0.05, 0.62), (-0.3, 0.58)], GLASSES, 0.04,
                 group="head")
    if "hairclip" in acc and not back:
        x = 0.22 if side else -0.3
        pen.line([(x - 0.1, 0.2), (x + 0.1, 0.32)], CLIP, 0.07, group="head")
        pen.line([(x - 0.1, 0.3), (x + 0.1, 0.2)], CLIP, 0.07, group="head")
    if "hair_ribbon" in acc:
        x, y = (-0.42, 0.16) if side else (0.44, 0.12)
        pen.poly([(x, y), (x - 0.24, y - 0.16), (x - 0.22, y + 0.16)], RIBBON, group="head")
        pen.poly([(x, y), (x + 0.24, y - 0.16), (x + 0.22, y + 0.16)], RIBBON, group="head")
        pen.ellipse((x - 0.06, y - 0.06, x + 0.06, y + 0.06), shade(RIBBON, 0.7), group="head")
    if "hat" in acc:
        pen.ellipse((-0.42, -0.34, 0.42, 0.2), HAT, group="head")
        pen.rect((-0.4, -0.02, 0.4, 0.1), HAT_BAND, group="head")
        pen.ellipse((-0.7, 0.04, 0.7, 0.24), HAT, group="head")


def draw_figure(layer: Image.Image, look: Look, cx: float, top: float, s: float, style: str) -> dict:
    """Draw a figure on an RGBA layer; returns its recorded pixel bounds by group."""
    look.check()
    pen = Pen(ImageDraw.Draw(layer), cx, top, s, style, mirror=look.view == "from_side" and look.facing == "left",
              sx=0.74 if look.view == "from_side" else 1.0)
    hair, skin = vocab.HAIR_COLOURS[look.hair_colour], vocab.SKINS[look.skin]
    back = look.view == "from_behind"
    _back_hair(pen, look, hair)
    outfits.DRAW[look.outfit](pen, vocab.OUTFIT_COLOURS[look.outfit_colour], skin, look.view)
    pen.rect((-0.11, 0.85, 0.11, 1.12), skin)
    if back:
        pen.ellipse((-0.5, -0.06, 0.5, 1.02), hair, group="head")
        if look.hair_style == "long_hair":
            pen.poly([(-0.5, 0.5), (0.5, 0.5), (0.56, 2.2), (0.0, 2.36), (-0.56, 2.2)], hair)
        elif look.hair_style == "ponytail":
            pen.ellipse((-0.22, 0.1, 0.22, 1.72), hair)
    else:
        pen.ellipse((-0.45, 0.0, 0.45, 1.0) if not look.view == "from_side" else (-0.42, 0.0, 0.46, 1.0), skin,
                    group="head")
        _face(pen, look, style)
        _bangs(pen, look, hair)
    _ties(pen, look)
    _accessories(pen, look)
    return pen.bounds


def apply_style(layer: Image.Image, style: str, figures: list[tuple[float, float, float]]) -> Image.Image:
    """The shaded and glossy styles' light, on the finished figure layer (cx, top, s per figure)."""
    if style not in ("shaded", "glossy"):
        return layer
    a = np.asarray(layer).astype(np.float32)
    h, w = a.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = a[..., :3]
    for cx, top, s in figures:
        u, v = (xx - cx) / s, (yy - top) / s
        if style == "shaded":  # a cel shadow on the side away from the light
            dark = (u > 0.12 + 0.12 * v) & (a[..., 3] > 0)
            rgb[dark] *= 0.74
        else:  # a soft highlight on the head and the chest, towards white
            g = np.exp(-(((u + 0.18) / 0.28) ** 2 + ((v - 0.22) / 0.16) ** 2)) * 0.55
            g += np.exp(-(((u + 0.16) / 0.16) ** 2 + ((v - 1.45) / 0.22) ** 2)) * 0.4
            rgb += (255 - rgb) * g[..., None]
    a[..., :3] = np.clip(rgb, 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")
