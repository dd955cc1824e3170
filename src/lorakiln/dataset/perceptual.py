"""Perceptual hashes (imagehash) behind a registry: image -> hex string of hash_size² bits."""

from __future__ import annotations

from typing import Callable

import imagehash
from PIL import Image

from lorakiln.core.registry import Registry

Hasher = Callable[[Image.Image, int], str]
HASHERS: Registry[Hasher] = Registry("perceptual hash")

HASHERS.register("phash", lambda im, n: str(imagehash.phash(im, hash_size=n)))
HASHERS.register("dhash", lambda im, n: str(imagehash.dhash(im, hash_size=n)))
HASHERS.register("ahash", lambda im, n: str(imagehash.average_hash(im, hash_size=n)))
HASHERS.register("whash", lambda im, n: str(imagehash.whash(im, hash_size=n)))


def hash_kind(name: str, size: int) -> str:
    """What a cached hash was made with; a different kind means hash again."""
    return f"{name}-{size}"


def perceptual_hash(im: Image.Image, name: str = "phash", size: int = 8) -> str:
    return HASHERS.get(name)(im, size)
