"""The dataset generator: pictures of chosen characters (and anonymous figures) with their
posts and boxes, every attribute drawn from a `Mix` of controllable weights, deterministic:
picture i of seed s is the same whatever n is and whichever process makes it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Iterator, NamedTuple

from PIL import Image

from lorakiln.toyworld import vocab
from lorakiln.toyworld.characters import CHARACTERS, Character, resolve
from lorakiln.toyworld.posts import PostTags, scene_tags
from lorakiln.toyworld.render import Look
from lorakiln.toyworld.scene import FigureBoxes, Scene, render_scene


def _even(keys) -> dict[str, float]:
    return {k: 1.0 for k in keys}


@dataclass(frozen=True)
class Mix:
    """How often each attribute value appears. Weights need not sum to one; a missing value
    never appears. Probabilities are between 0 and 1."""
    view: dict[str, float] = field(default_factory=lambda: {"front": 0.6, "from_side": 0.2, "from_behind": 0.2})
    framing: dict[str, float] = field(default_factory=lambda: {"full_body": 0.3, "cowboy_shot": 0.25,
                                                               "upper_body": 0.25, "portrait": 0.2})
    background: dict[str, float] = field(default_factory=lambda: {"white": 0.3, "simple": 0.25, "sky": 0.25,
                                                                  "room": 0.2})
    style: dict[str, float] = field(default_factory=lambda: _even(vocab.STYLES))
    outfit: dict[str, float] = field(default_factory=lambda: _even(vocab.OUTFITS))  # when not the default
    default_outfit: float = 0.5  # a character wears its default outfit (type and colour)
    default_accessories: float = 0.7  # a character wears its default accessories
    accessory: float = 0.12  # each other accessory, independently
    anonymous: float = 0.25  # a figure is an anonymous random girl instead of a named character
    two_figures: float = 0.15  # share of 2girls pictures

    def check(self) -> None:
        tables = {"view": vocab.VIEWS, "framing": vocab.FRAMINGS, "background": vocab.BACKGROUNDS,
                  "style": vocab.STYLES, "outfit": vocab.OUTFITS}
        for name, known in tables.items():
            weights = getattr(self, name)
            bad = [k for k in weights if k not in known]
            if bad or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"Mix.{name} = {weights}: weights must be >= 0, not all zero, over "
                                 f"{', '.join(known)}" + (f" (unknown: {', '.join(bad)})" if bad else ""))
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not 0.0 <= v <= 1.0:
                raise ValueError(f"Mix.{f.name} = {v}: a probability between 0 and 1")


class Sample(NamedTuple):
    image: Image.Image
    tags: PostTags
    boxes: list[FigureBoxes]
    scene: Scene


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    keys = [k for k, w in weights.items() if w > 0]
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _dress(rng: random.Random, mix: Mix, default: tuple[str, str] | None) -> tuple[str, str]:
    if default is not None and rng.random() < mix.default_outfit:
        return default
    outfit = _pick(rng, mix.outfit)
    return outfit, rng.choice(vocab.OUTFIT_COLOUR_CHOICES[outfit])


def _accessories(rng: random.Random, mix: Mix, default: tuple[str, ...]) -> tuple[str, ...]:
    worn = set(default) if default and rng.random() < mix.default_accessories else set()
    worn |= {a for a in vocab.ACCESSORIES if rng.random() < mix.accessory}
    return tuple(a for a in vocab.ACCESSORIES if a in worn)


def anonymous_fixed(rng: random.Random) -> tuple[str, str, str, str]:
    """Random fixed features that are no named character's (held-out ones included)."""
    taken = {c.fixed for c in CHARACTERS}
    while True:
        fixed = (rng.choice(list(vocab.HAIR_STYLES)), rng.choice(list(vocab.HAIR_COLOURS)),
                 rng.choice(list(vocab.EYE_COLOURS)), rng.choice(list(vocab.SKINS)))
        if fixed not in taken:
            return fixed


def sample_look(rng: random.Random, mix: Mix, char: Character | None, view: str) -> Look:
    facing = rng.choice(("left", "right"))
    if char is None:
        fixed = anonymous_fixed(rng)
        outfit, colour = _dress(rng, mix, None)
        return Look(*fixed, outfit, colour, _accessories(rng, mix, ()), view, facing)
    outfit, colour = _dress(rng, mix, (char.outfit, char.outfit_colour))
    return Look(*char.fixed, outfit, colour, _accessories(rng, mix, char.accessories), view, facing, char.name)


def sample_scene(rng: random.Random, chars: tuple[Character, ...], mix: Mix, *, seed: int, size: int = 64,
                 supersample: int = 2) -> Scene:
    two = rng.random() < mix.two_figures
    framings = {k: w for k, w in mix.framing.items() if k in vocab.TWO_FIGURE_FRAMINGS} if two else mix.framing
    if two and sum(framings.values()) <= 0:
        two, framings = False, mix.framing
    picks: list[Character | None] = []
    for _ in range(2 if two else 1):
        pool = [c for c in chars if c not in picks]
        picks.append(rng.choice(pool) if pool and rng.random() >= mix.anonymous else None)
    looks = tuple(sample_look(rng, mix, c, _pick(rng, mix.view)) for c in picks)
    bg = _pick(rng, mix.background)
    bg_colour = rng.choice(list(vocab.BACKGROUND_COLOURS)) if bg == "simple" else None
    return Scene(looks, _pick(rng, framings), bg, bg_colour, _pick(rng, mix.style), seed, size, supersample)


def generate(n: int, seed: int = 0, *, characters=None, mix: Mix | None = None, size: int = 64,
             supersample: int = 2, start: int = 0) -> Iterator[Sample]:
    """`n` pictures (numbered from `start`) of `characters` (names or Character; None: the
    pretraining characters; an empty list: anonymous figures only), with posts and boxes."""
    chars, mix = resolve(characters), mix or Mix()
    mix.check()
    for i in range(start, start + n):
        rng = random.Random(f"toyworld/{seed}/{i}")
        scene = sample_scene(rng, chars, mix, seed=rng.randrange(2**31), size=size, supersample=supersample)
        image, boxes = render_scene(scene)
        yield Sample(image, scene_tags(scene), boxes, scene)
