"""e621 / e926: `/posts.json` answering `{"posts": [...]}`.

Facts (reference/datasets.md §9.3): `limit` <= 320; `page=N` or keyset `page=b<id>`; HTTP Basic
login:api_key; a descriptive User-Agent naming the user (browser UAs get blocked); a hard limit
of 2 requests/s and a request to stay near 1/s sustained; ratings s/q/e (s is "safe");
tags by category in `tags{general,species,character,copyright,artist,invalid,lore,meta,contributor}`.
"""

from __future__ import annotations

from typing import Any

from lorakiln.sources.base import (
    Post,
    PostsJsonFamily,
    SourceError,
    as_int,
    ext_of,
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
        f = raw.get("file") or {}
        flags = raw.get("flags") or {}
        score = raw.get("score")
        tags = {c: split_tags(v) for c, v in (raw.get("tags") or {}).items()}
        return Post(
            site=self.spec.name,
            id=as_int(raw["id"]),
            post_url=f"{self.base_url}/posts/{raw['id']}",
            file_url=f.get("url") or None,
            md5=f.get("md5") or None,
            ext=f.get("ext") or ext_of(f.get("url")),
            width=as_int(f.get("width")),
            height=as_int(f.get("height")),
            file_size=as_int(f.get("size"), 0) or None,
            rating=self.canon_rating(raw.get("rating")),
            score=as_int(score.get("total") if isinstance(score, dict) else score),
            created_at=raw.get("created_at") or None,
            tags={c: t for c, t in tags.items() if t},
            deleted=bool(flags.get("deleted")),
        )

    def rating_terms(self, include: frozenset[str], exclude: frozenset[str]) -> list[str]:
        inc = {r for r in include if r in _LETTER}
        if len(inc) == 1:
            return [f"rating:{_LETTER[next(iter(inc))]}"]
        if not include and len(exclude) == 1 and next(iter(exclude)) in _LETTER:
            return [f"-rating:{_LETTER[next(iter(exclude))]}"]
        return []
