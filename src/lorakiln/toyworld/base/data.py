"""Pretraining data for the toy base: renders of the pretraining characters and their captions.

Captions are the post's tags (general, character, artist) as kiln's caption stage writes them:
spaces for underscores (sometimes underscores, so both spellings work), joined with ", ", in a
shuffled order, with tag dropout so short prompts work, and some empty captions for CFG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from lorakiln.toyworld import PostTags, generate


@dataclass(frozen=True)
class CaptionStyle:
    empty: float = 0.1  # share of empty captions (the unconditional branch of CFG)
    full: float = 0.45  # share of captions with every tag
    min_keep: float = 0.25  # otherwise each tag is kept with a probability drawn from [min_keep, 1)
    underscores: float = 0.15  # share of captions spelled with underscores
    negative: float = 0.3  # share of the empty captions replaced by kiln's default negative prompt


def default_negative() -> str:
    """kiln eval's default negative prompt: none of its words exist in the toy world, so it is
    trained as "nothing asked" (like the empty caption) and CFG with it behaves as with ""."""
    from lorakiln.config.eval import EvalConfig

    return EvalConfig.model_fields["negative"].default


def post_tags(tags: PostTags) -> list[str]:
    """The tags a caption may hold: general, character and artist (copyright and meta are constant)."""
    return [*tags.general, *tags.character, *tags.artist]


def caption(tags: PostTags, rng: random.Random, style: CaptionStyle = CaptionStyle()) -> str:
    if rng.random() < style.empty:
        return default_negative() if rng.random() < style.negative else ""
    words = post_tags(tags)
    if rng.random() >= style.full:
        keep = rng.uniform(style.min_keep, 1.0)
        words = [w for w in words if rng.random() < keep] or [rng.choice(words)]
    rng.shuffle(words)
    if rng.random() >= style.underscores:
        words = [w.replace("_", " ") for w in words]
    return ", ".join(words)


def prompt(*tags: str) -> str:
    """A sampling prompt in the captions' spelling."""
    return ", ".join(t.replace("_", " ") for t in tags)


def render(n: int, seed: int, start: int = 0) -> tuple[np.ndarray, list[PostTags]]:
    """n pretraining pictures (no held-out character) as uint8 [n, 64, 64, 3] and their tags."""
    images = np.empty((n, 64, 64, 3), dtype=np.uint8)
    tags = []
    for i, s in enumerate(generate(n, seed=seed, start=start)):
        images[i] = np.asarray(s.image.convert("RGB"))
        tags.append(s.tags)
    return images, tags


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    return pixels.clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
