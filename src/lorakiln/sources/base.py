"""What every imageboard source shares: the normalised post, the site record, and page walking.

A site *family* (danbooru.py, gelbooru.py, e621.py) knows one API shape: how to ask for a page
of posts and how to read one. A *site* (registry.py) is a family at a default host with its own
limits. Nothing here does I/O: page walking takes the request function as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping

from lorakiln.core.errors import KilnError
from lorakiln.sources.fields import Malformed, kind_of, post_id, show

CANON_RATINGS = ("general", "sensitive", "questionable", "explicit")


class SourceError(KilnError):
    """A site answered something we cannot use (bad JSON shape, refused search...)."""


@dataclass(frozen=True)
class Post:
    """One post, normalised across sites. `rating` is one of CANON_RATINGS or None."""

    site: str
    id: int
    post_url: str
    file_url: str | None
    md5: str | None
    ext: str | None
    width: int = 0
    height: int = 0
    file_size: int | None = None
    rating: str | None = None
    score: int = 0
    created_at: str | None = None
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deleted: bool = False

    @property
    def tag_set(self) -> frozenset[str]:
        return frozenset(t for tags in self.tags.values() for t in tags)

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: before an id (keyset) or a page number."""

    before_id: int | None = None
    page: int | None = None


@dataclass(frozen=True)
class Auth:
    """How credentials travel: HTTP Basic (user, key) and/or secret query parameters."""

    basic: tuple[str, str] | None = None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteSpec:
    """A site: an API family at a default host, with the limits that host asks for."""

    name: str
    family: type["SiteFamily"]
    base_url: str
    rate: float = 1.0  # requests per second, sustained, per host
    max_rate: float | None = None  # hard ceiling the site enforces (official host only)
    page_size: int = 100  # the most posts one request may ask for
    max_page: int | None = None  # deepest numbered page the site serves
    tag_limit: int | None = None  # search terms per request (None: no limit)
    needs_username: bool = False  # the site asks clients to name their user in the UA
    credentials: str | None = None  # credentials table name (default: the site name)
    about: str = ""

    @property
    def credentials_key(self) -> str:
        return self.credentials or self.name


class SiteFamily:
    """One API shape. Subclasses fill the class attributes and the three request/parse hooks."""

    keyset: ClassVar[bool] = False  # supports `page=b<id>`
    first_page: ClassVar[int] = 1
    free_prefixes: ClassVar[tuple[str, ...]] = ()  # search terms that do not count to tag_limit
    score_sort_term: ClassVar[str | None] = None
    id_below_term: ClassVar[str | None] = None  # e.g. "id:<{}" to continue past the page cap
    rating_aliases: ClassVar[dict[str, frozenset[str]]] = {}

    def __init__(self, spec: SiteSpec, base_url: str | None = None):
        self.spec = spec
        self.base_url = (base_url or spec.base_url).rstrip("/")

    # -- hooks ---------------------------------------------------------------------
    def posts_request(self, terms: list[str], cursor: Cursor, limit: int) -> tuple[str, dict[str, str]]:
        """(url, params) for one page of posts."""
        raise NotImplementedError

    def raw_posts(self, body: Any) -> list[dict]:
        """The list of raw post objects in a page body."""
        raise NotImplementedError

    def parse_post(self, raw: dict) -> Post:
        raise NotImplementedError

    def auth(self, login: str | None, api_key: str | None, user_id: str | None) -> Auth:
        return Auth(basic=(login, api_key)) if login and api_key else Auth()

    # -- search terms --------------------------------------------------------------
    def rating_terms(self, include: frozenset[str], exclude: frozenset[str]) -> list[str]:
        """Terms asking the site for these canonical ratings; [] when it cannot say it in one term."""
        return []

    def score_term(self, min_score: int) -> str:
        return f"score:>={min_score}"

    def canon_rating(self, value: str | None) -> str | None:
        """The site's rating value as one of CANON_RATINGS."""
        hits = self.rating_aliases.get(value.strip().lower()) if value else None
        return next(iter(hits)) if hits and len(hits) == 1 else None

    def counts(self, term: str) -> bool:
        """Whether a search term counts toward the site's tag limit."""
        t = term.lstrip("-").lower()
        return not any(t.startswith(p) for p in self.free_prefixes)


class PostsJsonFamily(SiteFamily):
    """Danbooru and its descendant e621: `/posts.json` paged by `page=b<id>` (keyset) or `page=N`."""

    keyset = True

    def posts_request(self, terms: list[str], cursor: Cursor, limit: int) -> tuple[str, dict[str, str]]:
        params = {"tags": " ".join(terms), "limit": str(limit)}
        if cursor.before_id is not None:
            params["page"] = f"b{cursor.before_id}"
        elif cursor.page is not None and cursor.page != self.first_page:
            params["page"] = str(cursor.page)
        return f"{self.base_url}/posts.json", params


def walk_pages(
    family: SiteFamily,
    terms: list[str],
    fetch: Callable[[str, dict[str, str]], Any],
    *,
    page_size: int,
    by_id: bool,
    max_pages: int | None = None,
    on_note: Callable[[str], None] = lambda _m: None,
    on_bad: Callable[["BadPost"], None] = lambda _b: None,
    on_page: Callable[[bool], None] = lambda _clean: None,
) -> Iterator[list[Post]]:
    """Yield pages of posts until the last one: keyset (`b<id>`) when `by_id` and the family allows,
    numbered pages otherwise, within the site's page-count cap (continuing with `id:<` if it can).
    A malformed post goes to `on_bad` with its reason and the walk goes on; `on_page(clean)` follows
    each page that parsed (clean: every post in it was well formed), before its posts are yielded."""
    keyset = by_id and family.keyset
    cursor = Cursor() if keyset else Cursor(page=family.first_page)
    extra: list[str] = []
    walked, seen = 0, set()
    cap = family.spec.max_page
    while max_pages is None or walked < max_pages:
        url, params = family.posts_request(terms + extra, cursor, page_size)
        raws = family.raw_posts(fetch(url, params))
        walked += 1
        posts, bad = parse_page(family, raws)
        for b in bad:
            on_bad(b)
        on_page(not bad)
        ids = {p.id for p in posts}
        if ids and ids <= seen:  # a site ignoring the cursor would be walked forever
            on_note(f"{family.spec.name}: the site answered the same posts again for the next page; stopped there")
            return
        seen |= ids
        if posts:
            yield posts
        if len(raws) < page_size or not posts:
            return
        lowest = min(ids)
        if keyset:
            if cursor.before_id is not None and lowest >= cursor.before_id:
                on_note(f"{family.spec.name}: the site answered posts above the requested id; stopped there")
                return
            cursor = Cursor(before_id=lowest)
            continue
        nxt = cursor.page + 1
        if cap is not None and nxt - family.first_page + 1 > cap:
            if not (by_id and family.id_below_term):
                on_note(f"{family.spec.name}: stopped at the site's page limit ({cap} pages)")
                return
            extra, nxt = [family.id_below_term.format(lowest)], family.first_page
        cursor = Cursor(page=nxt)


@dataclass(frozen=True)
class BadPost:
    """A post skipped as malformed: its id when that much was readable, and why."""

    id: int | None
    reason: str


def parse_page(family: SiteFamily, raws: list) -> tuple[list[Post], list[BadPost]]:
    """The well-formed posts of a page, and a BadPost for each one that is not."""
    posts, bad = [], []
    for raw in raws:
        try:
            posts.append(_parse(family, raw))
        except Malformed as e:
            bad.append(BadPost(_readable_id(raw), f"skipped malformed post {_ident(raw)}: {e}"))
    return posts, bad


def _readable_id(raw: Any) -> int | None:
    try:
        return post_id(raw.get("id")) if isinstance(raw, dict) else None
    except Malformed:
        return None


def _parse(family: SiteFamily, raw: Any) -> Post:
    if not isinstance(raw, dict):
        raise Malformed(f"not an object but {kind_of(raw)}")
    if raw.get("id") in (None, ""):
        raise Malformed("it has no id")
    return family.parse_post(raw)


def _ident(raw: Any) -> str:
    """The post's id as the site wrote it, for the reason: readable even when it is the bad field."""
    pid = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(pid, int) and not isinstance(pid, bool):
        return str(pid)
    return show(pid) if pid not in (None, "") else "?"
