"""Gelbooru and the Gelbooru 0.2 family (safebooru.org, rule34.xxx, xbooru, tbib): DAPI.

Facts (reference/datasets.md §9.2): `/index.php?page=dapi&s=post&q=index&json=1` with `limit`
(100 on gelbooru.com, 1000 on safebooru.org), numbered `pid` from 0, `api_key` + numeric
`user_id` as query parameters (required by gelbooru.com since 2025). Gelbooru answers
`{"@attributes": {...}, "post": [...]}`; safebooru.org a bare list (and an empty body for no
results), with `hash` for the md5 and `directory`/`image` for the file. Tags carry no category.
"""

from __future__ import annotations

from typing import Any

from lorakiln.sources.base import (
    Auth,
    Cursor,
    Post,
    SiteFamily,
    SourceError,
    as_int,
    ext_of,
    iso_time,
    split_tags,
)


class Gelbooru(SiteFamily):
    keyset = False
    first_page = 0
    score_sort_term = "sort:score:desc"
    id_below_term = "id:<{}"
    rating_aliases = {
        "general": frozenset({"general"}), "g": frozenset({"general"}),
        "safe": frozenset({"general"}), "s": frozenset({"general"}),  # pre-2022 and safebooru.org wording
        "sensitive": frozenset({"sensitive"}),
        "questionable": frozenset({"questionable"}), "q": frozenset({"questionable"}),
        "explicit": frozenset({"explicit"}), "e": frozenset({"explicit"}),
        "sfw": frozenset({"general", "sensitive"}), "nsfw": frozenset({"questionable", "explicit"}),
    }

    def posts_request(self, terms: list[str], cursor: Cursor, limit: int) -> tuple[str, dict[str, str]]:
        params = {"page": "dapi", "s": "post", "q": "index", "json": "1",
                  "limit": str(limit), "pid": str(cursor.page or 0), "tags": " ".join(terms)}
        return f"{self.base_url}/index.php", params

    def raw_posts(self, body: Any) -> list[dict]:
        if body in (None, ""):
            return []
        if isinstance(body, list):
            return body
        if isinstance(body, dict):
            if "post" in body or "@attributes" in body:
                posts = body.get("post") or []
                return posts if isinstance(posts, list) else [posts]
            if body.get("success") is False:
                raise SourceError(f"{self.spec.name} refused the search: {body.get('message') or body}")
        raise SourceError(f"{self.spec.name}: unexpected answer shape ({type(body).__name__})")

    def parse_post(self, raw: dict) -> Post:
        deleted = str(raw.get("status", "")).lower() == "deleted"
        url = None if deleted else (raw.get("file_url") or self._file_url(raw))
        md5 = raw.get("md5") or raw.get("hash") or None
        return Post(
            site=self.spec.name,
            id=as_int(raw["id"]),
            post_url=f"{self.base_url}/index.php?page=post&s=view&id={raw['id']}",
            file_url=url,
            md5=md5,
            ext=ext_of(url) or ext_of(raw.get("image")),
            width=as_int(raw.get("width")),
            height=as_int(raw.get("height")),
            rating=self.canon_rating(raw.get("rating")),
            score=as_int(raw.get("score")),
            created_at=iso_time(raw.get("created_at") or raw.get("change")),
            tags={"general": split_tags(raw.get("tags"))},
            deleted=deleted,
        )

    def _file_url(self, raw: dict) -> str | None:
        if raw.get("directory") not in (None, "") and raw.get("image"):
            return f"{self.base_url}/images/{raw['directory']}/{raw['image']}"
        return None

    def auth(self, login: str | None, api_key: str | None, user_id: str | None) -> Auth:
        if api_key and user_id:
            return Auth(params={"api_key": api_key, "user_id": user_id})
        return Auth()

    def rating_terms(self, include: frozenset[str], exclude: frozenset[str]) -> list[str]:
        if len(include) == 1:
            return [f"rating:{next(iter(include))}"]
        if not include and len(exclude) == 1:
            return [f"-rating:{next(iter(exclude))}"]
        return []
