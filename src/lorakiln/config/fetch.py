"""[fetch] in project.toml: network settings, defaults for every query, and saved queries.

```toml
[fetch]
workers = 4

[fetch.defaults]          # apply to every query unless the query says otherwise
min_area = 589824         # or "768x768"

[[fetch.queries]]         # `kiln fetch` with no arguments replays these
site = "danbooru"
query = "kafka_(honkai:_star_rail) solo | kafka_(honkai:_star_rail) solo_focus"
min_score = 20
top = 200
```
Credentials never live here (see config/credentials.py).
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lorakiln.config.credentials import SECRET_PARAMS
from lorakiln.config.sections import SectionModel, section

_AREA = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")
RATING_WORDS = frozenset({"g", "s", "q", "e", "general", "sensitive", "questionable", "explicit",
                          "safe", "sfw", "nsfw"})


def _words(v: Any, sep: str | None = None) -> Any:
    """Accept a list or one string of items separated by `sep` (whitespace when None)."""
    if isinstance(v, str):
        return [w.strip() for w in v.split(sep) if w.strip()]
    if isinstance(v, (list, tuple)):
        out: list[str] = []
        for item in v:
            out += _words(item, sep) if isinstance(item, str) else [item]
        return out
    return v


class QueryOptions(BaseModel):
    """What decides which posts are fetched and how they are stored; one set per query."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    blacklist: list[str] = Field(default_factory=list, description="Posts with any of these tags are skipped (space-separated).")
    rating: list[str] = Field(default_factory=list, description="Ratings to keep: g, s, q, e (or general, sensitive, questionable, explicit, safe, sfw, nsfw); empty keeps all. Comma-separated.")
    min_score: int | None = Field(None, ge=-(10**9), le=10**9, description="Skip posts scored below this.")
    min_area: int | None = Field(None, ge=1, le=10**12, description="Skip images with fewer pixels than this (a number or WxH, e.g. 768x768).")
    sort: Literal["score", "newest", "oldest"] = Field("score", description="Order of the selection: score (highest first), newest or oldest.")
    top: int | None = Field(None, ge=1, le=10**7, description="Keep only the first N posts in that order.")
    prepend_tags: list[str] = Field(default_factory=list, description="Caption tags put first (comma-separated); not searched.")
    append_tags: list[str] = Field(default_factory=list, description="Caption tags put last (comma-separated); not searched.")
    replace_underscores: bool = Field(False, description="Write caption tags with spaces instead of underscores.")
    max_short_side: int | None = Field(None, ge=64, le=65536, description="Downscale images whose short side is longer than this.")
    keep_original: bool = Field(False, description="With --max-short-side: keep the full-size file in images/originals/.")
    formats: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "webp"], description="File types to download (videos and animations are skipped by default).")
    subset: str = Field("main", description="Subset (dataset folder) the images go to.")

    @field_validator("blacklist", mode="before")
    @classmethod
    def _tags(cls, v):
        return _words(v)

    @field_validator("rating", "formats", mode="before")
    @classmethod
    def _commas(cls, v):
        return [w.lower() for w in _words(_words(v, ","))] if v is not None else v

    @field_validator("prepend_tags", "append_tags", mode="before")
    @classmethod
    def _caption(cls, v):
        return _words(v, ",")

    @field_validator("rating")
    @classmethod
    def _known_rating(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in RATING_WORDS]
        if bad:
            raise ValueError(f"unknown rating {bad[0]!r}; use {', '.join(sorted(RATING_WORDS))}")
        return v

    @field_validator("min_area", mode="before")
    @classmethod
    def _area(cls, v):
        if isinstance(v, str):
            m = _AREA.match(v)
            if m:
                return int(m.group(1)) * int(m.group(2))
        return v

    @field_validator("subset")
    @classmethod
    def _subset(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", v):
            raise ValueError("subset names use letters, digits, '_', '-' or '.'")
        return v


class SavedQuery(QueryOptions):
    """One remembered search: `kiln fetch` with no arguments runs every saved query."""

    site: str = Field(description="Site name: danbooru, gelbooru, safebooru, e621, e926.")
    query: str = Field(description="Tags; `|` separates OR groups: `a b | a c`.")
    base_url: str | None = Field(None, description="Another host of the same software (mirror, self-hosted, tests).")

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, v: str | None) -> str | None:
        """A base URL is saved in project.toml: credentials belong in the environment or credentials.toml."""
        if v is None:
            return v
        parts = urlsplit(v)
        if "@" in parts.netloc or any(k.lower() in SECRET_PARAMS for k, _ in parse_qsl(parts.query)):
            raise ValueError("no credentials in the base URL: set them in the environment "
                             "(KILN_<SITE>_API_KEY, ...) or in credentials.toml")
        return v.rstrip("/")

    def options(self) -> dict[str, Any]:
        """The explicitly set query options (what a saved entry stores)."""
        return self.model_dump(exclude_unset=True, exclude={"site", "query", "base_url"})


@section("fetch")
class FetchConfig(SectionModel):
    rate: float | None = Field(None, gt=0, le=1000, description="Requests per second per host (default: the site's polite rate, about 1/s).")
    workers: int = Field(4, ge=1, le=16, description="Parallel image downloads (the per-host rate still holds).")
    timeout: float = Field(30.0, gt=0, le=3600, description="Seconds to wait for any data before a request times out (and is retried).")
    deadline: float = Field(600.0, gt=0, le=86400, description="Seconds one download or API page may take in all; a file served slower fails with 'too slow' (not retried in the same run).")
    max_file_mb: float = Field(200.0, gt=0, le=1 << 20, description="Largest file to download, in MiB; a file also stops at the size its post declares (plus a quarter, at least 1 MiB).")
    save_every: float = Field(2.0, gt=0, le=3600, description="Seconds between manifest saves while downloading (what a kill can lose at most).")
    retries: int = Field(5, ge=0, le=20, description="Retries on 429, 5xx, timeouts and dropped connections.")
    backoff: float = Field(1.0, ge=0, le=3600, description="First retry wait in seconds; doubles each retry (Retry-After wins).")
    max_retry_wait: float = Field(300.0, gt=0, le=86400, description="Give up when the site asks to wait longer than this (seconds).")
    tag_limit: int | None = Field(None, ge=1, le=1000, description="Search terms per request (default: the site's limit for anonymous users, e.g. 2 on Danbooru).")
    page_size: int | None = Field(None, ge=1, le=100000, description="Posts per API page (default and ceiling: the site's maximum).")
    max_pages: int | None = Field(None, ge=1, le=10**7, description="Stop a search after this many pages.")
    defaults: QueryOptions = Field(default_factory=QueryOptions, description="Options applied to every query unless it sets its own.")
    queries: list[SavedQuery] = Field(default_factory=list, description="Saved queries replayed by `kiln fetch` with no arguments.")

    def effective(self, q: SavedQuery) -> SavedQuery:
        """The query with [fetch.defaults] filling what it does not set itself."""
        merged = {**self.defaults.model_dump(exclude_unset=True), **q.model_dump(exclude_unset=True)}
        return SavedQuery.model_validate(merged)
