"""Backgrounds: white, a flat colour, a blue sky with clouds over grass, a room with a window
and a wooden floor. Details (clouds, the window) move with the scene's seed."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from lorakiln.toyworld import vocab

SKY_TOP, SKY_LOW, GRASS = (84, 146, 234), (168, 208, 250), (96, 176, 86)
WALL, FLOOR, PANE = (236, 220, 188), (158, 106, 66), (150, 200, 246)


def _sky(r: int, rng: random.Random) -> Image.Image:
    t = np.linspace(0.0, 1.0, r, dtype=np.float32)[:, None, None]
    grad = np.array(SKY_TOP, np.float32) * (1 - t) + np.array(SKY_LOW, np.float32) * t
    im = Image.fromarray(np.broadcast_to(grad, (r, r, 3)).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    for _ in range(rng.randint(1, 3)):
        x, y, w = rng.uniform(0.05, 0.95) * r, rng.uniform(0.08, 0.45) * r, rng.uniform(0.12, 0.22) * r
        for k in (-1, 0, 1):
            d.ellipse([x + k * w * 0.45 - w * 0.4, y - w * (0.3 if k else 0.45), x + k * w * 0.45 + w * 0.4,
                       y + w * 0.25], fill=(255, 255, 255))
    d.rectangle([0, int(r * 0.84), r, r], fill=GRASS)
    return im


def _room(r: int, rng: random.Random) -> Image.Image:
    im = Image.new("RGB", (r, r), WALL)
    d = ImageDraw.Draw(im)
    floor = int(r * 0.74)
    d.rectangle([0, floor, r, r], fill=FLOOR)
    for k in range(1, 4):
        y = floor + (r - floor) * k / 4
        d.line([0, y, r, y], fill=(128, 84, 50), width=max(1, r // 96))
    x, w, h = rng.uniform(0.08, 0.62) * r, 0.3 * r, 0.3 * r
    d.rectangle([x, 0.12 * r, x + w, 0.12 * r + h], fill=(250, 250, 250))
    d.rectangle([x + r * 0.02, 0.14 * r, x + w - r * 0.02, 0.1 * r + h], fill=PANE)
    d.line([x + w / 2, 0.12 * r, x + w / 2, 0.12 * r + h], fill=(250, 250, 250), width=max(1, r // 64))
    return im


def render_background(kind: str, colour: str | None, r: int, rng: random.Random) -> Image.Image:
    if kind == "white":
        return Image.new("RGB", (r, r), (255, 255, 255))
    if kind == "simple":
        if colour not in vocab.BACKGROUND_COLOURS:
            raise ValueError(f"a simple background needs a colour from {', '.join(vocab.BACKGROUND_COLOURS)}, "
                             f"not {colour!r}")
        return Image.new("RGB", (r, r), vocab.BACKGROUND_COLOURS[colour])
    if kind == "sky":
        return _sky(r, rng)
    if kind == "room":
        return _room(r, rng)
    raise ValueError(f"unknown background {kind!r}; known: {', '.join(vocab.BACKGROUNDS)}")


def background_tags(kind: str, colour: str | None) -> tuple[str, ...]:
    tags = vocab.BACKGROUNDS[kind]
    return tags + ((f"{colour}_background",) if kind == "simple" else ())
