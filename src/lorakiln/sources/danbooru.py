"""Danbooru and Danbooru-compatible hosts (safebooru.donmai.us, ...): `/posts.json`.

Facts (reference/datasets.md §9.1): `limit` <= 200; pages `page=N` or keyset `page=b<id>`;
HTTP Basic login:api_key; anonymous and Member accounts may search 2 tags at a time and
`rating:` does not count; ratings g/s/q/e; tags by category in `tag_string_<category>`.
"""

from __future__ import annotations

from typing import Any

from lorakiln.sources.base import Post, PostsJsonFamily, SourceError
from lorakiln.sources.fields import (
    byte_size,
    ext_of,
    file_ext,
    file_url,
    flag,
    iso_time,
    md5_of,
    post_id,
    rating_value,
    score,
    side,
    split_tags,
)

CATEGORIES = ("general", "character", "copyright", "artist", "meta")
_LETTER = {"general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"}


class Danbooru(PostsJsonFamily):
    first_page = 1
    free_prefixes = ("rating:", "status:deleted", "limit:")
    score_sort_term = "order:score"
    rating_aliases = {
        "g": frozenset({"general"}), "general": frozenset({"general"}),
        "s": frozenset({"sensitive"}), "sensitive": frozenset({"sensitive"}),
        "safe": frozenset({"sensitive"}),  # Danbooru's own alias: safe -> s
        "q": frozenset({"questionable"}), "questionable": frozenset({"questionable"}),
        "e": frozenset({"explicit"}), "explicit": frozenset({"explicit"}),
        "sfw": frozenset({"general", "sensitive"}), "nsfw": frozenset({"questionable", "explicit"}),
    }

    def raw_posts(self, body: Any) -> list[dict]:
        if isinstance(body, list):
            return body
        if isinstance(body, dict) and body.get("success") is False:
            raise SourceError(f"{self.spec.name} refused the search: {body.get('message') or body}")
        raise SourceError(f"{self.spec.name}: expected a list of posts, got {type(body).__name__}")

    def parse_post(self, raw: dict) -> Post:
        pid, url = post_id(raw["id"]), file_url(raw.get("file_url"), self.base_url)
        return Post(
            site=self.spec.name,
            id=pid,
            post_url=f"{self.base_url}/posts/{pid}",
            file_url=url,
            md5=md5_of(raw.get("md5")),
            ext=file_ext(raw.get("file_ext")) or ext_of(url),
            width=side(raw.get("image_width"), "image_width"),
            height=side(raw.get("image_height"), "image_height"),
            file_size=byte_size(raw.get("file_size"), "file_size"),
            rating=self.canon_rating(rating_value(raw.get("rating"))),
            score=score(raw.get("score")),
            created_at=iso_time(raw.get("created_at")),
            tags=_tags(raw),
            deleted=flag(raw.get("is_deleted"), "is_deleted"),
        )

    def rating_terms(self, include: frozenset[str], exclude: frozenset[str]) -> list[str]:
        wanted = [r for r in _LETTER if (not include or r in include) and r not in exclude]
        if len(wanted) == len(_LETTER):
            return []
        return [f"rating:{','.join(_LETTER[r] for r in wanted)}"] if wanted else []


def _tags(raw: dict) -> dict[str, tuple[str, ...]]:
    tags = {c: split_tags(raw.get(f"tag_string_{c}"), f"tag_string_{c}") for c in CATEGORIES}
    tags = {c: t for c, t in tags.items() if t}
    if not tags and raw.get("tag_string"):
        tags = {"general": split_tags(raw["tag_string"], "tag_string")}
    return tags
