"""Gelbooru and the Gelbooru 0.2 family (safebooru.org, rule34.xxx, xbooru, tbib): DAPI.

Facts (reference/datasets.md §9.2): `/index.php?page=dapi&s=post&q=index&json=1` with `limit`
(100 on gelbooru.com, 1000 on safebooru.org), numbered `pid` from 0, `api_key` + numeric
`user_id` as query parameters (required by gelbooru.com since 2025). Gelbooru answers
`{"@attributes": {...}, "post": [...]}`; safebooru.org a bare list (and an empty body for no
results), with `hash` for the md5 and `directory`/`image` for the file. Tags carry no category.
"""

from __future__ import annotations

from typing import Any

from lorakiln.sources.base import Auth, Cursor, Post, SiteFamily, SourceError
from lorakiln.sources.fields import (
    ext_of,
    file_url,
    iso_time,
    md5_of,
    post_id,
    rating_value,
    score,
    side,
    split_tags,
    text,
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
        pid = post_id(raw["id"])
        deleted = (text(raw.get("status"), "status") or "").lower() == "deleted"
        url = None if deleted else (file_url(raw.get("file_url"), self.base_url) or self._file_url(raw))
        stamp = "created_at" if raw.get("created_at") not in (None, "") else "change"
        return Post(
            site=self.spec.name,
            id=pid,
            post_url=f"{self.base_url}/index.php?page=post&s=view&id={pid}",
            file_url=url,
            md5=md5_of(raw.get("md5")) or md5_of(raw.get("hash"), "hash"),
            ext=ext_of(url) or ext_of(text(raw.get("image"), "image")),
            width=side(raw.get("width"), "width"),
            height=side(raw.get("height"), "height"),
            rating=self.canon_rating(rating_value(raw.get("rating"))),
            score=score(raw.get("score")),
            created_at=iso_time(raw.get(stamp), stamp),
            tags={"general": split_tags(raw.get("tags"))},
            deleted=deleted,
        )

    def _file_url(self, raw: dict) -> str | None:
        directory, image = raw.get("directory"), text(raw.get("image"), "image")
        if isinstance(directory, int) and not isinstance(directory, bool):
            directory = str(directory)  # safebooru.org's numeric folders
        directory = text(directory, "directory")
        return f"{self.base_url}/images/{directory}/{image}" if directory and image else None

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
