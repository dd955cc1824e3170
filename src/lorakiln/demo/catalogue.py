"""The demo character's posts for the local imageboard: pictures from lorakiln.demo.images
with booru tags by category, plus the near-duplicates and the monochrome picture that the
dedupe and filter stages should catch."""

from __future__ import annotations

import io
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from PIL import Image

from lorakiln.demo.booru_server import ReplayPost
from lorakiln.demo.images import Spec, demo_specs, make_image

CHARACTER = "kilnchan_(kiln_demo)"
COPYRIGHT = "kiln_demo"


def encode(im: Image.Image, ext: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG" if ext == "png" else "JPEG", **({} if ext == "png" else {"quality": quality}))
    return buf.getvalue()


def make_post(pid: int, spec: Spec, *, ext: str = "jpg", score: int = 10, rating: str = "general",
              extra_tags: dict[str, list[str]] | None = None, image: Image.Image | None = None,
              quality: int = 90) -> ReplayPost:
    im = image if image is not None else make_image(spec)
    tags = {"general": list(spec.tags()), "character": [CHARACTER], "copyright": [COPYRIGHT],
            "artist": [f"demo_artist_{pid % 3}"], "meta": ["highres"] if min(im.size) >= 512 else []}
    for cat, more in (extra_tags or {}).items():
        tags[cat] = [*tags.get(cat, []), *more]
    when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=pid)
    return ReplayPost(pid, encode(im, ext, quality), ext, im.width, im.height, tags, rating, score, when)


def demo_catalogue(n: int = 24, seed: int = 0, *, scale: float = 1.0, near_duplicates: bool = True,
                   monochrome: bool = True, deleted: int = 0, first_id: int = 5000) -> list[ReplayPost]:
    """Posts of the demo character, plus what later stages should catch: two near-duplicates
    (one resized and re-encoded, one re-encoded) under other ids and one monochrome image."""
    rng = random.Random(seed)
    specs = [replace(s, width=max(32, int(s.width * scale)), height=max(32, int(s.height * scale)))
             for s in demo_specs(n, seed)]
    posts, pid = [], first_id
    for i, spec in enumerate(specs):
        pid += rng.randint(1, 9)
        rating = "sensitive" if spec.outfit == "swimsuit" else "general"
        posts.append(make_post(pid, spec, ext="png" if i % 5 == 4 else "jpg", score=rng.randint(0, 120),
                               rating=rating))
    if near_duplicates and len(specs) >= 2:
        src = make_image(specs[0])
        small = src.resize((int(src.width * 0.85), int(src.height * 0.85)), Image.Resampling.LANCZOS)
        pid += 11
        posts.append(make_post(pid, specs[0], image=small, quality=80, score=rng.randint(0, 40)))
        pid += 7
        posts.append(make_post(pid, specs[1], image=make_image(specs[1]), quality=70, score=rng.randint(0, 40)))
    if monochrome:
        pid += 5
        mono = replace(specs[-1] if specs else Spec(seed=seed), seed=seed * 1000 + 999, mono=True)
        posts.append(make_post(pid, mono, score=rng.randint(0, 60)))
    for k in range(deleted):
        posts[k * 3 % len(posts)].deleted = True
    return posts
