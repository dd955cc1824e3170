"""Booru posts for toy-world pictures: tags by category in Danbooru spelling, exactly as a
Danbooru post lists them (each category alphabetical), a rating, and the JSON fields a post
has (`tag_string_general`, ...), or a `ReplayPost` for the local booru replay.

A tag is given only for what the picture shows: no eye colour, hairclip or glasses from
behind, no skirt or shorts colour when the framing cuts above the waist.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from PIL import Image

from lorakiln.toyworld import vocab
from lorakiln.toyworld.background import background_tags
from lorakiln.toyworld.render import Look
from lorakiln.toyworld.scene import Scene

CATEGORIES = ("general", "character", "copyright", "artist", "meta")
RATING_NAMES = {"g": "general"}


@dataclass(frozen=True)
class PostTags:
    general: tuple[str, ...]
    character: tuple[str, ...] = ()
    copyright: tuple[str, ...] = (vocab.COPYRIGHT,)
    artist: tuple[str, ...] = ()
    meta: tuple[str, ...] = ()
    rating: str = vocab.RATING  # Danbooru's one letter

    def by_category(self) -> dict[str, list[str]]:
        return {c: list(getattr(self, c)) for c in CATEGORIES}

    def all(self) -> list[str]:
        return [t for c in CATEGORIES for t in getattr(self, c)]


def figure_tags(look: Look, framing: str) -> set[str]:
    """The general tags one figure earns in a picture with this framing."""
    back = look.view == "from_behind"
    tags = {*vocab.HAIR_STYLES[look.hair_style], vocab.hair_colour_tag(look.hair_colour),
            *vocab.SKIN_TAGS[look.skin], *vocab.VIEWS[look.view],
            *vocab.outfit_tags(look.outfit, look.outfit_colour, framing in vocab.LOWER_BODY_FRAMINGS)}
    if not back:
        tags.add(vocab.eye_colour_tag(look.eye_colour))
    tags |= {a for a in look.accessories if not (back and a in vocab.HIDDEN_FROM_BEHIND)}
    return tags


def scene_tags(scene: Scene) -> PostTags:
    n = len(scene.figures)
    general = {"1girl", "solo"} if n == 1 else {"2girls", "multiple_girls"}
    for look in scene.figures:
        general |= figure_tags(look, scene.framing)
    general.add(scene.framing)
    general |= set(background_tags(scene.background, scene.background_colour))
    chars = sorted({f.character for f in scene.figures if f.character})
    meta = ("lowres",) if scene.size <= 500 else ()  # Danbooru: lowres is 500x500 or less
    return PostTags(tuple(sorted(general)), tuple(chars), (vocab.COPYRIGHT,), (vocab.style_tag(scene.style),),
                    meta)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def danbooru_post(post_id: int, image: Image.Image, tags: PostTags, *, score: int = 10,
                  created_at: datetime | None = None) -> dict:
    """The fields of a Danbooru post (posts.json) for this picture, as a PNG file."""
    data = png_bytes(image)
    when = created_at or datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=post_id)
    cats = tags.by_category()
    return {
        "id": post_id, "created_at": when.isoformat(timespec="milliseconds"), "score": score,
        "rating": tags.rating, "image_width": image.width, "image_height": image.height,
        "file_ext": "png", "file_size": len(data), "md5": hashlib.md5(data).hexdigest(),
        "tag_string": " ".join(sorted(tags.all())), "tag_count": len(tags.all()),
        **{f"tag_string_{c}": " ".join(cats[c]) for c in CATEGORIES},
        **{f"tag_count_{c}": len(cats[c]) for c in CATEGORIES},
    }


def replay_post(post_id: int, image: Image.Image, tags: PostTags, *, score: int = 10):
    """A post for lorakiln.demo.booru_server.BooruReplay (a real local imageboard)."""
    from lorakiln.demo.booru_server import ReplayPost

    when = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=post_id)
    return ReplayPost(post_id, png_bytes(image), "png", image.width, image.height, tags.by_category(),
                      RATING_NAMES[tags.rating], score, when)
