"""A hostile local imageboard for tests: the replay server (demo/booru_server.py) with its
per-request faults (demo/faults.py), as a fixture that stops every server it started.

    from booru_faults import fetch, hostile_booru, small_posts  # noqa: F401  (hostile_booru is a fixture)

    def test_x(project, hostile_booru):
        booru = hostile_booru(site="danbooru")
        booru.fail("slow", on="file", post_id=booru.posts[0].id, chunk=16)
        report = fetch(project, booru, deadline=0.5)
"""

from __future__ import annotations

import copy
import functools

import pytest

from lorakiln.config.fetch import FetchConfig, SavedQuery
from lorakiln.core.progress import NullProgress
from lorakiln.demo.booru_server import BooruReplay, ReplayPost
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue


@functools.lru_cache(maxsize=4)
def _catalogue(n: int) -> tuple[ReplayPost, ...]:
    return tuple(demo_catalogue(n, seed=7, scale=0.15, near_duplicates=False, monochrome=False))


def small_posts(n: int = 6) -> list[ReplayPost]:
    """n distinct tiny posts of the demo character (fresh copies: tests may change them)."""
    return [copy.copy(p) for p in _catalogue(n)]


@pytest.fixture
def hostile_booru():
    """hostile_booru(posts=None, site="danbooru", **BooruReplay options) -> a started server."""
    started: list[BooruReplay] = []

    def start(posts: list[ReplayPost] | None = None, site: str = "danbooru", **options) -> BooruReplay:
        booru = BooruReplay(small_posts() if posts is None else posts, site=site, **options).start()
        started.append(booru)
        return booru

    yield start
    for booru in started:
        booru.stop()


def fetch(project, booru: BooruReplay, *, environ=None, progress=None, refresh=False, **opts):
    """`kiln fetch <site> <the demo character> --base-url <booru>` with fast retries; network
    settings (FetchConfig fields) and query options both go in `opts`."""
    from lorakiln.services.fetch import fetch_query

    net = {k: opts.pop(k) for k in list(opts) if k in FetchConfig.model_fields}
    cfg = FetchConfig(**{"rate": 500, "backoff": 0.01, "workers": 3, **net})
    q = SavedQuery(site=booru.site, query=CHARACTER, base_url=booru.url, sort="newest", **opts)
    return fetch_query(project, q, cfg, progress or NullProgress(), refresh=refresh,
                       environ={} if environ is None else environ)
