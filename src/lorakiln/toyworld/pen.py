"""Drawing in figure units: a figure is 4 units tall with its crown at (0, 0) and the head one
unit high. The pen maps units to pixels of the render canvas, mirrors figures facing left,
outlines shapes in the outlined style, and records each shape's pixel bounds by group ("head"
or "body") so the scene knows the figure's boxes without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import ImageDraw

from lorakiln.toyworld.vocab import RGB

OUTLINE: RGB = (30, 24, 36)


def shade(c: RGB, f: float) -> RGB:
    """Darker (f < 1) or lighter (f > 1, towards white) version of a colour."""
    if f <= 1:
        return (int(c[0] * f), int(c[1] * f), int(c[2] * f))
    t = min(1.0, f - 1)
    return tuple(int(v + (255 - v) * t) for v in c)  # type: ignore[return-value]


@dataclass
class Pen:
    draw: ImageDraw.ImageDraw
    cx: float  # pixel x of the figure's centre line
    top: float  # pixel y of the crown
    s: float  # pixels per unit
    style: str = "flat"
    mirror: bool = False  # a side view facing left
    sx: float = 1.0  # horizontal squeeze of the body (side views)
    bounds: dict[str, list[float]] = field(default_factory=dict)

    def _p(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + (-x if self.mirror else x) * self.s, self.top + y * self.s)

    @property
    def outline_w(self) -> int:
        return max(1, round(self.s * 0.035)) if self.style == "outlined" else 0

    def _record(self, group: str, pts: list[tuple[float, float]], pad: float) -> None:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        b = [min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad]
        old = self.bounds.get(group)
        self.bounds[group] = b if old is None else [min(old[0], b[0]), min(old[1], b[1]),
                                                     max(old[2], b[2]), max(old[3], b[3])]

    def _box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (a, b), (c, d) = self._p(x0, y0), self._p(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]

    def ellipse(self, box: tuple[float, float, float, float], fill: RGB, group: str = "body",
                outline: bool = True) -> None:
        b = self._box(*box)
        w = self.outline_w if outline else 0
        self.draw.ellipse(b, fill=fill, outline=OUTLINE if w else None, width=w)
        self._record(group, [(b[0], b[1]), (b[2], b[3])], 1)

    def rect(self, box: tuple[float, float, float, float], fill: RGB, group: str = "body",
             outline: bool = True) -> None:
        b = self._box(*box)
        w = self.outline_w if outline else 0
        self.draw.rectangle(b, fill=fill, outline=OUTLINE if w else None, width=w)
        self._record(group, [(b[0], b[1]), (b[2], b[3])], 1)

    def poly(self, pts: list[tuple[float, float]], fill: RGB, group: str = "body", outline: bool = True,
             squeeze: bool = False) -> None:
        k = self.sx if squeeze else 1.0
        px = [self._p(x * k, y) for x, y in pts]
        w = self.outline_w if outline else 0
        self.draw.polygon(px, fill=fill, outline=OUTLINE if w else None, width=w)
        self._record(group, px, 1 + w / 2)

    def line(self, pts: list[tuple[float, float]], fill: RGB, width: float, group: str = "body") -> None:
        px = [self._p(x, y) for x, y in pts]
        w = max(1, round(width * self.s))
        self.draw.line(px, fill=fill, width=w)
        self._record(group, px, w / 2 + 1)

    def chord(self, box: tuple[float, float, float, float], start: float, end: float, fill: RGB,
              group: str = "body") -> None:
        b = self._box(*box)
        if self.mirror:  # mirror the angles: a -> 180 - a
            start, end = 180 - end, 180 - start
        w = self.outline_w
        self.draw.chord(b, start, end, fill=fill, outline=OUTLINE if w else None, width=w)
        self._record(group, [(b[0], b[1]), (b[2], b[3])], 1)
