"""e621 / e926: `/posts.json` answering `{"posts": [...]}`.

Facts (reference/datasets.md §9.3): `limit` <= 320; `page=N` or keyset `page=b<id>`; HTTP Basic
login:api_key; a descriptive User-Agent naming the user (browser UAs get blocked); a hard limit
of 2 requests/s and a request to stay near 1/s sustained; ratings s/q/e (s is "safe");
tags by category in `tags{general,species,character,copyright,artist,invalid,lore,meta,contributor}`.
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
    obj,
    post_id,
    rating_value,
    score,
    side,
    split_tags,
)

_LETTER = {"general": "s", "questionable": "q", "explicit": "e"}


class E621(PostsJsonFamily):
    first_page = 1
    score_sort_term = "order:score"
    rating_aliases = {
        "s": frozenset({"general"}), "safe": frozenset({"general"}), "general": frozenset({"general"}),
        "g": frozenset({"general"}), "sfw": frozenset({"general"}),
        "q": frozenset({"questionable"}), "questionable": frozenset({"questionable"}),
        "e": frozenset({"explicit"}), "explicit": frozenset({"explicit"}),
        "nsfw": frozenset({"questionable", "explicit"}),
    }

    def raw_posts(self, body: Any) -> list[dict]:
        if isinstance(body, dict) and isinstance(body.get("posts"), list):
            return body["posts"]
        if isinstance(body, dict) and body.get("success") is False:
            raise SourceError(f"{self.spec.name} refused the search: {body.get('message') or body.get('reason') or body}")
        raise SourceError(f"{self.spec.name}: expected {{\"posts\": [...]}}, got {type(body).__name__}")

    def parse_post(self, raw: dict) -> Post:
        pid, f, flags = post_id(raw["id"]), obj(raw.get("file"), "file"), obj(raw.get("flags"), "flags")
        url = file_url(f.get("url"), self.base_url, "file.url")
        votes = raw.get("score")
        tags = {c: split_tags(v, f"tags.{c}") for c, v in obj(raw.get("tags"), "tags").items()}
        return Post(
            site=self.spec.name,
            id=pid,
            post_url=f"{self.base_url}/posts/{pid}",
            file_url=url,
            md5=md5_of(f.get("md5"), "file.md5"),
            ext=file_ext(f.get("ext"), "file.ext") or ext_of(url),
            width=side(f.get("width"), "file.width"),
            height=side(f.get("height"), "file.height"),
            file_size=byte_size(f.get("size"), "file.size"),
            rating=self.canon_rating(rating_value(raw.get("rating"))),
            score=score(votes.get("total") if isinstance(votes, dict) else votes, "score"),
            created_at=iso_time(raw.get("created_at")),
            tags={c: t for c, t in tags.items() if t},
            deleted=flag(flags.get("deleted"), "flags.deleted"),
        )

    def rating_terms(self, include: frozenset[str], exclude: frozenset[str]) -> list[str]:
        inc = {r for r in include if r in _LETTER}
        if len(inc) == 1:
            return [f"rating:{_LETTER[next(iter(inc))]}"]
        if not include and len(exclude) == 1 and next(iter(exclude)) in _LETTER:
            return [f"-rating:{_LETTER[next(iter(exclude))]}"]
        return []
