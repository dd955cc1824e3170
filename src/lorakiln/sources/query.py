"""Queries as values: parse `a b | a c`, plan what each site can search, filter the rest locally.

Pure functions: no I/O, no site calls. A query is OR-ed groups of AND-ed terms. Each group is
one remote search; the terms a site cannot take (its tag limit) are checked here against the
post's tags instead, so the result is the same whatever the account level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from lorakiln.core.errors import KilnError
from lorakiln.core.hashing import text_hash
from lorakiln.sources.base import Post, SiteFamily

# metatags only a site can evaluate (send them or fail); `rating:`/`score:`/`order:` are parsed
REMOTE_METATAGS = frozenset({
    "id", "user", "approver", "fav", "ordfav", "pool", "inpool", "source", "status", "width", "height",
    "mpixels", "ratio", "date", "age", "filesize", "filetype", "type", "md5", "parent", "child", "limit",
    "tagcount", "gentags", "arttags", "chartags", "copytags", "metatags", "commenter", "noter",
    "favcount", "upvote", "downvote", "is", "has", "pixiv_id", "search", "embedded", "duration",
    "ischild", "isparent", "set", "description", "note", "order", "sort",
})
SORT_NAMES = ("score", "newest", "oldest")


class QueryError(KilnError):
    pass


@dataclass(frozen=True)
class TagGroup:
    """One OR branch: tags that must be present / absent, rating and score terms, site-only terms."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    remote_only: tuple[str, ...] = ()
    ratings_in: frozenset[str] = frozenset()
    ratings_out: frozenset[str] = frozenset()
    min_score: int | None = None
    score_sort: bool = False


@dataclass(frozen=True)
class Criteria:
    """The query options that decide which posts qualify (all canonical)."""

    blacklist: frozenset[str] = frozenset()
    ratings: frozenset[str] = frozenset()  # empty: any
    min_score: int | None = None
    min_area: int | None = None
    formats: frozenset[str] = frozenset()  # empty: any


@dataclass(frozen=True)
class SearchPlan:
    terms: tuple[str, ...]
    remote_sort: bool
    sent: frozenset[str] = field(default_factory=frozenset)  # include tags the site checks
    local: tuple[str, ...] = ()  # include tags checked here


# -- parsing -----------------------------------------------------------------------------
def parse_query(text: str, family: SiteFamily) -> list[TagGroup]:
    """`a b | a c` -> two groups. `rating:`, `score:>=N`, `order:score` are understood."""
    groups = [g.split() for g in text.split("|")]
    if not text.strip() or any(not g for g in groups):
        raise QueryError(f"empty search group in query {text!r} (write `a b | a c`)")
    return [_group(words, family) for words in groups]


def _group(words: list[str], family: SiteFamily) -> TagGroup:
    inc, exc, remote, r_in, r_out, score, sort = [], [], [], set(), set(), None, False
    for w in words:
        neg, bare = w.startswith("-"), w.lstrip("-")
        name, _, value = bare.partition(":")
        name = name.lower()
        if name == "rating" and value:
            (r_out if neg else r_in).update(_ratings(value, family))
        elif name == "score" and value and not neg and _min_score(value) is not None:
            score = _min_score(value)
        elif name in ("order", "sort") and value.lower().startswith("score"):
            sort = True
        elif (value and name in REMOTE_METATAGS) or "*" in bare or w.startswith("~"):
            remote.append(w)
        else:
            (exc if neg else inc).append(bare)
    return TagGroup(tuple(inc), tuple(exc), tuple(remote), frozenset(r_in), frozenset(r_out), score, sort)


def _ratings(value: str, family: SiteFamily) -> set[str]:
    out: set[str] = set()
    for part in value.lower().split(","):
        hits = family.rating_aliases.get(part.strip())
        if hits is None:
            known = ", ".join(sorted(family.rating_aliases))
            raise QueryError(f"unknown rating {part!r} for {family.spec.name}; known: {known}")
        out |= hits
    return out


def _min_score(value: str) -> int | None:
    for op, bump in ((">=", 0), (">", 1)):
        if value.startswith(op) and value[len(op):].lstrip("-").isdigit():
            return int(value[len(op):]) + bump
    return None


def criteria_for(family: SiteFamily, *, blacklist: Iterable[str] = (), ratings: Iterable[str] = (),
                 min_score: int | None = None, min_area: int | None = None,
                 formats: Iterable[str] = ()) -> Criteria:
    canon: set[str] = set()
    for r in ratings:
        canon |= _ratings(r, family)
    return Criteria(frozenset(blacklist), frozenset(canon), min_score, min_area,
                    frozenset(f.lower().lstrip(".") for f in formats))


# -- planning: what to send --------------------------------------------------------------
def plan_search(group: TagGroup, crit: Criteria, family: SiteFamily, *, tag_limit: int | None,
                want_score_order: bool) -> SearchPlan:
    """The terms to send within `tag_limit`, in priority order; the rest is filtered locally.

    Priority: site-only terms (must fit), the first tag, the score order (when only the top
    posts are wanted, so the walk can stop early), other tags, rating, min score, exclusions.
    """
    budget = [float("inf") if tag_limit is None else tag_limit]
    terms: list[str] = []

    def take(term: str) -> bool:
        cost = 1 if family.counts(term) else 0
        if cost > budget[0]:
            return False
        budget[0] -= cost
        terms.append(term)
        return True

    for t in group.remote_only:
        if not take(t):
            raise QueryError(f"{family.spec.name} cannot take {t!r} within its limit of {tag_limit} search "
                             "terms, and it cannot be checked locally; shorten the group or raise --tag-limit")
    sent = [t for t in group.include[:1] if take(t)]
    sort_term = family.score_sort_term if (want_score_order or group.score_sort) else None
    remote_sort = bool(sort_term) and take(sort_term)
    sent += [t for t in group.include[1:] if take(t)]
    r_in = (group.ratings_in & crit.ratings) if group.ratings_in and crit.ratings else (group.ratings_in or crit.ratings)
    for t in family.rating_terms(frozenset(r_in), group.ratings_out):
        take(t)
    floor = _max_opt(group.min_score, crit.min_score)
    if floor is not None:
        take(family.score_term(floor))
    for t in dict.fromkeys([*group.exclude, *sorted(crit.blacklist)]):
        take(f"-{t}")
    local = tuple(t for t in group.include if t not in sent)
    return SearchPlan(tuple(terms), remote_sort, frozenset(sent), local)


# -- local checks ------------------------------------------------------------------------
def reject_reason(post: Post, group: TagGroup, plan: SearchPlan, crit: Criteria) -> str | None:
    """Why this post does not qualify, or None. Exclusions are always re-checked (harmless)."""
    tags = post.tag_set
    for t in plan.local:
        if t not in tags:
            return f"missing tag {t}"
    for t in group.exclude:
        if t in tags:
            return f"excluded tag {t}"
    for t in sorted(crit.blacklist):
        if t in tags:
            return f"blacklisted tag {t}"
    if post.rating is not None:
        if (group.ratings_in and post.rating not in group.ratings_in) or post.rating in group.ratings_out \
                or (crit.ratings and post.rating not in crit.ratings):
            return f"rating {post.rating}"
    floor = _max_opt(group.min_score, crit.min_score)
    if floor is not None and post.score < floor:
        return "score below minimum"
    if crit.min_area and post.area and post.area < crit.min_area:
        return "image too small"
    if crit.formats and post.ext and post.ext.lower() not in crit.formats:
        return f"format {post.ext.lower()}"
    return None


def order_posts(posts: Iterable[Post], sort: str) -> list[Post]:
    """score: highest first (newest breaks ties); newest / oldest: by post id."""
    if sort not in SORT_NAMES:
        raise QueryError(f"unknown sort {sort!r}; known: {', '.join(SORT_NAMES)}")
    posts = list(posts)
    if sort == "score":
        return sorted(posts, key=lambda p: (-p.score, -p.id))
    return sorted(posts, key=lambda p: p.id, reverse=(sort == "newest"))


def select(posts: Iterable[Post], sort: str, top: int | None) -> list[Post]:
    ordered = order_posts(posts, sort)
    return ordered[:top] if top is not None else ordered


# -- provenance ---------------------------------------------------------------------------
def fingerprint(site: str, base_url: str, query: str, options: Mapping) -> str:
    """A short stable id of what decides the selection (not caption or download settings)."""
    return text_hash(json.dumps({"site": site, "base": base_url, "query": " | ".join(
        " ".join(g.split()) for g in query.split("|")), **options}, sort_keys=True, default=str), 12)


def _max_opt(a: int | None, b: int | None) -> int | None:
    vals = [v for v in (a, b) if v is not None]
    return max(vals) if vals else None
