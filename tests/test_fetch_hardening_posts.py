"""`kiln fetch` against a hostile booru, API pages: malformed post fields on every site family,
pages of the wrong shape, and what gets cached."""

import json

import pytest
from booru_faults import fetch, hostile_booru, small_posts  # noqa: F401  (hostile_booru is a fixture)

from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.faults import Fault, patch_body
from lorakiln.sources.base import parse_page
from lorakiln.sources.fields import Malformed, iso_time, split_tags
from lorakiln.sources.registry import SITES
from lorakiln.sources.http import FetchError


def malformed_notes(report):
    return [n for n in report.notes if n.startswith("skipped malformed post")]


def check_one_bad_post(project, booru, report, bad_id, field, shown=None):
    """The bad post is named with its field in the report, the others are fetched and recorded."""
    notes = malformed_notes(report)
    assert len(notes) == 1 and field in notes[0] and (shown or str(bad_id)) in notes[0], report.notes
    assert report.excluded["malformed post"] == 1
    good = [p for p in booru.posts if p.id != bad_id]
    assert report.downloaded == len(good) and not report.failed
    m = project.manifest()
    assert {int(r.post_id) for r in m} == {p.id for p in good} and all(r.kept for r in m)
    files = {p.name for p in project.images_dir.iterdir() if p.is_file()}
    assert files == {f"{booru.site}-{p.id}.{p.ext}" for p in good}  # no file without a record


DANBOORU = [
    ("file_ext", 5), ("file_ext", "../../../evil"), ("file_url", 5), ("file_url", ["http://x/a.jpg"]),
    ("md5", ["d41d8cd98f00b204e9800998ecf8427e"]), ("md5", "not-an-md5"), ("created_at", [2024]),
    ("created_at", 10**20), ("tag_string_general", {"a": 1}), ("tag_string_character", 7),
    ("image_width", -5), ("image_height", "tall"), ("image_width", 10**12), ("file_size", -1),
    ("score", "lots"), ("score", 1.5), ("rating", ["g"]), ("is_deleted", "maybe"),
]
E621 = [("file", ["x"]), ("file", {"md5": [1]}), ("file", {"url": 9}), ("file", {"ext": {"a": 1}}),
        ("file", {"size": -3}), ("tags", ["a", "b"]), ("tags", {"general": {"a": 1}}), ("flags", "deleted"),
        ("score", {"total": "many"}), ("created_at", {"t": 1})]
GELBOORU = [("tags", {"a": 1}), ("md5", 12), ("change", 10**20), ("created_at", ["x"]), ("width", -1),
            ("file_url", 3), ("directory", ["a"]), ("score", "x")]
_ALSO = {("gelbooru", "change"): {"created_at": ""}, ("gelbooru", "directory"): {"file_url": ""}}
CASES = [("danbooru", f, v) for f, v in DANBOORU] + [("e621", f, v) for f, v in E621] + \
        [("gelbooru", f, v) for f, v in GELBOORU] + \
        [("danbooru", "id", v) for v in ("abc", "12a", -4, 0, 1.5, True, 2**70)]


@pytest.fixture(scope="module")
def shapes():
    """One replay server per site family, for the JSON pages it renders (nothing is fetched)."""
    servers = {site: BooruReplay(small_posts(), site=site).start() for site in ("danbooru", "e621", "gelbooru")}
    yield servers
    for booru in servers.values():
        booru.stop()


@pytest.mark.parametrize("site,field,value", CASES, ids=[f"{s}-{f}={v!r}"[:48] for s, f, v in CASES])
def test_a_malformed_field_skips_that_post_only_with_its_reason(shapes, site, field, value):
    booru = shapes[site]
    spec, bad = SITES.get(site), booru.posts[1]
    family = spec.family(spec, booru.url)
    page = booru.render(booru.posts, 0, 100, len(booru.posts))
    page = patch_body(page, Fault("patch", options={"posts": {bad.id: {field: value, **_ALSO.get((site, field), {})}}}))
    posts, skipped = parse_page(family, family.raw_posts(page))
    nested = site == "e621" and field in ("file", "tags", "score") and isinstance(value, dict)
    inner = next(iter(value.values())) if nested else value  # "file.md5 is [1]"
    assert len(skipped) == 1 and field in skipped[0].reason and f"is {repr(inner)[:20]}" in skipped[0].reason
    assert ", expected " in skipped[0].reason
    assert skipped[0].reason.startswith(f"skipped malformed post {bad.id if field != 'id' else repr(value)[:20]}")
    assert {p.id for p in posts} == {p.id for p in booru.posts} - {bad.id}


@pytest.mark.parametrize("site,field,value", [("danbooru", "file_ext", 5), ("danbooru", "created_at", [1]),
                                              ("e621", "file", ["x"]), ("gelbooru", "tags", {"a": 1}),
                                              ("danbooru", "id", "abc")])
def test_a_fetch_skips_the_malformed_post_and_records_the_rest(project, hostile_booru, site, field, value):
    booru = hostile_booru(site=site)
    bad = booru.posts[2]
    booru.fail("patch", post_id=bad.id, times=None, fields={field: value})
    r = fetch(project, booru, environ={"KILN_E621_USERNAME": "t"})
    check_one_bad_post(project, booru, r, bad.id, field, shown=repr(value) if field == "id" else None)
    assert f"{site}-0" not in {rec.id for rec in project.manifest()}


def test_two_posts_with_text_ids_do_not_collide(project, hostile_booru):
    booru = hostile_booru()
    booru.fail("patch", times=None, posts={p.id: {"id": "nope"} for p in booru.posts[:2]})
    r = fetch(project, booru)
    assert r.excluded["malformed post"] == 2 and len(project.manifest()) == len(booru.posts) - 2


def test_a_unix_timestamp_created_at_is_read_as_a_time(project, hostile_booru):
    booru = hostile_booru()
    post = booru.posts[0]
    booru.fail("patch", post_id=post.id, times=None, fields={"created_at": 1700000000})
    r = fetch(project, booru)
    assert not r.notes and project.manifest().get(f"danbooru-{post.id}").created_at.startswith("2023-11-14T22:13:20")


def test_a_page_with_a_malformed_post_is_not_cached(project, hostile_booru):
    booru = hostile_booru()
    bad = booru.posts[0]
    booru.fail("patch", post_id=bad.id, times=1, fields={"md5": [1]})
    r1 = fetch(project, booru)
    r2 = fetch(project, booru)  # the site answers properly now
    assert r1.excluded["malformed post"] == 1 and r1.cached_pages == 0
    assert r2.pages == 1 and r2.cached_pages == 0 and r2.downloaded == 1 and not r2.notes
    r3 = fetch(project, booru)  # that clean page was cached
    assert r3.pages == 0 and r3.cached_pages == 1


def test_a_page_of_the_wrong_shape_fails_clearly_and_is_not_cached(project, hostile_booru):
    booru = hostile_booru()
    booru.fail("json", body={"posts": "soon"})
    with pytest.raises(FetchError, match="expected a list of posts, got dict"):
        fetch(project, booru)
    r = fetch(project, booru)  # no --refresh needed
    assert r.pages == 1 and r.downloaded == len(booru.posts)


def test_non_object_entries_and_posts_without_id_are_reported():
    from lorakiln.sources.base import SiteSpec, walk_pages
    from lorakiln.sources.danbooru import Danbooru

    fam = Danbooru(SiteSpec("danbooru", Danbooru, "http://h"))
    good = {"id": 5, "md5": "0" * 32, "file_url": "http://h/5.jpg", "tag_string_general": "a"}
    bad: list[str] = []
    pages = list(walk_pages(fam, ["a"], lambda u, p: [good, "junk", {"id": None}, 7], page_size=100,
                            by_id=True, on_bad=bad.append))
    assert [[p.id for p in pg] for pg in pages] == [[5]]
    assert len(bad) == 3 and "not an object" in bad[0].reason and "no id" in bad[1].reason
    assert [b.id for b in bad] == [None, None, None]


def test_a_site_that_ignores_the_page_cursor_does_not_loop_forever():
    from lorakiln.sources.base import SiteSpec, walk_pages
    from lorakiln.sources.danbooru import Danbooru
    from lorakiln.sources.gelbooru import Gelbooru

    page = [{"id": i, "md5": "0" * 32, "file_url": f"http://h/{i}.jpg"} for i in (9, 8)]
    for fam in (Danbooru(SiteSpec("d", Danbooru, "http://h")), Gelbooru(SiteSpec("g", Gelbooru, "http://h"))):
        notes: list[str] = []
        body = page if fam.keyset else {"post": page}
        pages = list(walk_pages(fam, ["a"], lambda u, p: body, page_size=2, by_id=False, on_note=notes.append))
        assert len(pages) == 1 and "same posts again" in notes[0]
        pages = list(walk_pages(fam, ["a"], lambda u, p: body, page_size=2, by_id=True, on_note=notes.append))
        assert len(pages) == 1


def test_strict_field_readers():
    assert split_tags("a  b") == ("a", "b") and split_tags(["a", "b"]) == ("a", "b") and split_tags(None) == ()
    for value in ({"a": 1}, 7, ["a", 3]):
        with pytest.raises(Malformed):
            split_tags(value, "tags")
    assert iso_time(0) == "1970-01-01T00:00:00+00:00" and iso_time("1700000000").startswith("2023-11-14")
    for value in (10**20, float("nan"), ["x"], True):
        with pytest.raises(Malformed):
            iso_time(value, "created_at")


def _rewrite_cached_pages(project, change):
    files = list((project.cache_dir / "fetch" / "danbooru").glob("*.json"))
    for f in files:
        entry = json.loads(f.read_text())
        entry["body"] = change(entry["body"])
        f.write_text(json.dumps(entry))
    return len(files)


def test_a_bad_page_cached_by_an_older_run_is_asked_for_again(project, hostile_booru):
    booru = hostile_booru()
    fetch(project, booru)
    assert _rewrite_cached_pages(project, lambda body: {"posts": "soon"}) == 1  # what older kilns kept
    r = fetch(project, booru)
    assert r.pages == 1 and r.cached_pages == 0 and r.skipped == len(booru.posts)


def test_a_cached_page_with_a_malformed_post_is_dropped_from_the_cache(project, hostile_booru):
    booru = hostile_booru()
    fetch(project, booru, top=3)

    def spoil(body):
        body[0]["md5"] = ["x"]
        return body

    _rewrite_cached_pages(project, spoil)
    r1 = fetch(project, booru, top=3)
    assert r1.cached_pages == 1 and r1.excluded["malformed post"] == 1
    r2 = fetch(project, booru, top=3)
    assert r2.pages == 1 and r2.cached_pages == 0 and not r2.notes


def test_tags_with_control_characters_or_spaces_are_malformed(project, hostile_booru):
    booru = hostile_booru()
    p0, p1 = booru.posts[0], booru.posts[1]
    booru.fail("patch", times=None, posts={p0.id: {"tag_string_general": "solo bad\x00tag"},
                                           p1.id: {"tag_string_artist": "a\x1b[31mred"}})
    r = fetch(project, booru)
    assert r.excluded["malformed post"] == 2 and all("control characters" in n for n in malformed_notes(r))
    with pytest.raises(Malformed):
        split_tags(["two words"], "tags.general")


def test_a_site_cycling_between_two_pages_does_not_loop_forever():
    from lorakiln.sources.base import SiteSpec, walk_pages
    from lorakiln.sources.gelbooru import Gelbooru

    fam = Gelbooru(SiteSpec("g", Gelbooru, "http://h"))
    pages = [[{"id": i, "md5": "0" * 32, "file_url": f"http://h/{i}.jpg"} for i in ids] for ids in ((9, 8), (7, 6))]
    notes: list[str] = []
    walked = list(walk_pages(fam, ["a"], lambda u, p: {"post": pages[int(p["pid"]) % 2]}, page_size=2,
                             by_id=False, on_note=notes.append))
    assert [[p.id for p in pg] for pg in walked] == [[9, 8], [7, 6]] and "same posts again" in notes[0]
