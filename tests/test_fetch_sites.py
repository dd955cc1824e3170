"""`kiln fetch` against the local replay of each site: paging, records, limits, auth, User-Agent."""

import base64
import functools

import pytest

from lorakiln.config.fetch import FetchConfig, SavedQuery
from lorakiln.core.errors import KilnError
from lorakiln.core.hashing import file_digests
from lorakiln.core.progress import NullProgress
from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue
from lorakiln.services.fetch import fetch_query

FAST = dict(rate=500, backoff=0.01, workers=3)
ENV = {"KILN_E621_USERNAME": "tester"}


@functools.lru_cache(maxsize=1)
def catalogue():
    return tuple(demo_catalogue(10, seed=3, scale=0.2))


def run(project, site, booru, query, env=ENV, **opts):
    net = {k: opts.pop(k) for k in list(opts) if k in FetchConfig.model_fields}
    cfg = FetchConfig(**{**FAST, **net})
    q = SavedQuery(site=site, query=query, base_url=booru.url, **opts)
    return fetch_query(project, q, cfg, NullProgress(), environ=env)


def expected_ids(pred):
    return {p.id for p in catalogue() if pred(p)}


@pytest.mark.parametrize("site", ["danbooru", "gelbooru", "safebooru", "e621"])
def test_walks_every_page_and_records_each_post(project, site):
    posts = list(catalogue())
    with BooruReplay(posts, site=site) as booru:
        r = run(project, site, booru, CHARACTER, page_size=3, sort="newest")
        api = booru.api_requests()
    want = expected_ids(lambda p: True)
    assert r.candidates == len(want) == r.downloaded and not r.failed
    n_pages = len(want) // 3 + 1
    assert len(api) == n_pages
    if site in ("danbooru", "e621"):  # keyset: page=b<lowest id of the previous page>
        ids = sorted(want, reverse=True)
        assert [q.query.get("page") for q in api] == [None] + [f"b{ids[i * 3 + 2]}" for i in range(n_pages - 1)]
    else:  # numbered pid from 0
        assert [q.query["pid"] for q in api] == [str(i) for i in range(n_pages)]
    assert all(q.query["limit"] == "3" for q in api)
    m = project.manifest()
    assert {r.post_id for r in m} == {str(i) for i in want}
    by_id = {p.id: p for p in posts}
    for rec in m:
        src = by_id[int(rec.post_id)]
        path = project.abs(rec.file)
        assert rec.file == f"images/{site}-{src.id}.{src.ext}" and path.exists()
        assert file_digests(path)[0] == src.md5 == rec.md5
        assert (rec.width, rec.height) == (src.width, src.height)
        assert rec.score == src.score and rec.subset == "main" and rec.source == site
        assert rec.created_at and rec.created_at.startswith(str(src.created_at.year))
        assert rec.extra["fetch"]["fingerprint"] == r.fingerprint
        assert rec.file_url.startswith(booru.url) and str(src.id) in rec.post_url
        if site == "gelbooru" or site == "safebooru":
            assert set(rec.tags) == {"general"} and CHARACTER in rec.tags["general"]
            assert rec.rating == src.rating
        else:
            assert rec.tags["character"] == [CHARACTER] and "artist" in rec.tags
            assert rec.rating == (src.rating if site == "danbooru" else "general")
    assert not list(project.images_dir.rglob(".*.part"))


def test_danbooru_tag_limit_is_respected_and_the_rest_filtered_locally(project):
    with BooruReplay(list(catalogue()), site="danbooru", tag_limit=2) as booru:
        r = run(project, "danbooru", booru, f"{CHARACTER} solo coat -from_behind", blacklist="outdoors",
                rating="g", page_size=4, sort="newest")
        api = booru.api_requests()
    for q in api:  # the server refuses more than 2 counted terms with HTTP 422
        assert len([t for t in q.query["tags"].split() if not t.startswith("rating:")]) <= 2
    assert api[0].query["tags"] == f"{CHARACTER} solo rating:g"
    want = expected_ids(lambda p: {"coat"} <= p.all_tags and not {"from_behind", "outdoors"} & p.all_tags
                        and p.rating == "general")
    assert want and {int(rec.post_id) for rec in project.manifest()} == want
    assert r.excluded and r.candidates == len(want)


def test_top_by_score_uses_site_order_and_stops_early(project):
    posts = list(catalogue())
    with BooruReplay(posts, site="danbooru") as booru:
        r = run(project, "danbooru", booru, CHARACTER, top=4, page_size=3)
        api = booru.api_requests()
    assert "order:score" in api[0].query["tags"]
    assert [q.query.get("page") for q in api] == [None, "2"]  # numbered, stopped once 4 matched
    best = sorted(posts, key=lambda p: (-p.score, -p.id))[:4]
    assert {int(x.post_id) for x in project.manifest()} == {p.id for p in best} and r.selected == 4


def test_or_groups_are_merged_without_duplicates(project):
    with BooruReplay(list(catalogue()), site="e621") as booru:
        run(project, "e621", booru, f"{CHARACTER} coat | {CHARACTER} swimsuit | {CHARACTER} coat",
            sort="newest", page_size=50)
    want = expected_ids(lambda p: {"coat", "swimsuit"} & p.all_tags)
    ids = [int(rec.post_id) for rec in project.manifest()]
    assert sorted(ids) == sorted(want) and len(ids) == len(set(ids))


def test_basic_auth_goes_to_the_api_host_only(project):
    env = {"KILN_DANBOORU_LOGIN": "alice", "KILN_DANBOORU_API_KEY": "k3y-danbooru-0001"}
    with BooruReplay(list(catalogue())[:4], site="danbooru", auth=("alice", "k3y-danbooru-0001"),
                     file_host="localhost") as booru:
        r = run(project, "danbooru", booru, CHARACTER, env=env)
        want = "Basic " + base64.b64encode(b"alice:k3y-danbooru-0001").decode()
        assert all(q.headers.get("authorization") == want for q in booru.api_requests())
        files = booru.file_requests()
    assert r.downloaded == 4 and files and all("authorization" not in q.headers for q in files)


def test_gelbooru_sends_api_key_and_user_id_as_parameters(project):
    env = {"KILN_GELBOORU_USER_ID": "4242", "KILN_GELBOORU_API_KEY": "gelkey-secret-77"}
    with BooruReplay(list(catalogue())[:3], site="gelbooru", auth=("4242", "gelkey-secret-77")) as booru:
        r = run(project, "gelbooru", booru, CHARACTER, env=env)
        api = booru.api_requests()
        assert all(q.query["api_key"] == "gelkey-secret-77" and q.query["user_id"] == "4242" for q in api)
        assert all("api_key" not in q.query for q in booru.file_requests())
    assert r.downloaded == 3
    for rec in project.manifest():
        assert "gelkey" not in rec.model_dump_json() and "4242" not in rec.post_url + rec.file_url


def test_gelbooru_without_credentials_explains_how_to_set_them(project):
    with BooruReplay(list(catalogue())[:2], site="gelbooru", auth=("1", "x")) as booru:
        with pytest.raises(KilnError) as e:
            run(project, "gelbooru", booru, CHARACTER, env={})
    msg = str(e.value)
    assert "HTTP 401" in msg and "KILN_GELBOORU_API_KEY" in msg and "KILN_GELBOORU_USER_ID" in msg


def test_e621_user_agent_names_tool_and_user(project):
    with BooruReplay(list(catalogue())[:2], site="e621") as booru:
        run(project, "e621", booru, CHARACTER, env={"KILN_E621_LOGIN": "furfan", "KILN_E621_API_KEY": "e6key-123"})
        agents = {q.headers["user-agent"] for q in booru.requests}
    (ua,) = agents
    assert ua.startswith("lorakiln/") and "by furfan on e621" in ua and "Mozilla" not in ua
    with BooruReplay(list(catalogue())[:2], site="e621") as booru:
        with pytest.raises(KilnError, match="KILN_E621_USERNAME"):
            run(project, "e621", booru, CHARACTER, env={})
        assert booru.requests == []


def test_e926_shares_e621_credentials_and_shape(project):
    with BooruReplay(list(catalogue())[:3], site="e926") as booru:
        r = run(project, "e926", booru, CHARACTER, env={"KILN_E621_USERNAME": "tester"})
    assert r.downloaded == 3 and all(rec.id.startswith("e926-") for rec in project.manifest())


def test_refused_search_is_a_clear_error(project):
    with BooruReplay(list(catalogue())[:2], site="danbooru", tag_limit=1) as booru:
        with pytest.raises(KilnError, match="more than 1 tags") as e:
            run(project, "danbooru", booru, f"{CHARACTER} solo", tag_limit=5)
    assert "lower --tag-limit" in str(e.value)


def test_videos_and_unwanted_formats_are_skipped_before_download(project):
    posts = list(catalogue())[:4]
    with BooruReplay(posts, site="danbooru") as booru:
        r = run(project, "danbooru", booru, CHARACTER, formats="png")
    pngs = [p for p in posts if p.ext == "png"]
    assert r.downloaded == len(pngs) and r.excluded["format jpg"] == len(posts) - len(pngs)


def test_empty_result_page_ends_the_walk_cleanly(project):
    with BooruReplay(list(catalogue()), site="gelbooru") as booru:
        booru.fail("empty")
        r = run(project, "gelbooru", booru, CHARACTER)
    assert (r.candidates, r.downloaded, r.pages) == (0, 0, 1) and len(project.manifest()) == 0


def test_demo_catalogue_has_near_duplicates_and_a_monochrome_image():
    import io

    import imagehash
    import numpy as np
    from PIL import Image

    posts = list(catalogue())
    assert len(posts) == 13 and len({p.id for p in posts}) == 13
    hashes = [imagehash.phash(Image.open(io.BytesIO(p.image))) for p in posts]
    first, second, dup_a, dup_b = hashes[0], hashes[1], hashes[10], hashes[11]
    assert dup_a - first <= 6 and dup_b - second <= 6  # resized/re-encoded copies under other ids
    assert posts[10].md5 != posts[0].md5 and posts[10].width < posts[0].width
    assert min(first - h for h in hashes[1:10]) > 6  # the originals are distinct pictures
    a = np.asarray(Image.open(io.BytesIO(posts[12].image)).convert("RGB")).astype(int)
    assert "monochrome" in posts[12].tags["general"] and np.abs(a - a.mean(axis=2, keepdims=True)).max() <= 2
    colour = np.asarray(Image.open(io.BytesIO(posts[0].image)).convert("RGB")).astype(int)
    assert np.abs(colour - colour.mean(axis=2, keepdims=True)).max() > 30


@pytest.mark.parametrize("base, capped", [(None, True), ("https://e621.net/", True), ("http://www.e621.net", True),
                                           ("http://127.0.0.1:9", False)])
def test_e621_official_host_is_held_to_two_requests_per_second(base, capped):
    from lorakiln.config.credentials import SiteCredentials
    from lorakiln.services.fetch import make_client
    from lorakiln.sources.registry import SITES

    spec = SITES.get("e621")
    notes = []
    with make_client(spec, spec.family(spec, base), SiteCredentials(username="tester"), FetchConfig(rate=5),
                     notes.append) as client:
        assert client.rate == (2.0 if capped else 5.0)
    assert bool(notes) == capped and (not capped or "at most 2 requests/s" in notes[0])
    with make_client(spec, spec.family(spec, base), SiteCredentials(username="t"), FetchConfig(), notes.append) as c:
        assert c.rate == 1.0  # the polite default: about one request per second sustained
