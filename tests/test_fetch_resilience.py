"""`kiln fetch` under failure: rate limits, retries, bad files, interrupts and kill -9."""

import functools
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from interrupts import StopAfter

from lorakiln.config.fetch import FetchConfig, SavedQuery
from lorakiln.core.hashing import file_digests
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import Status
from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue
from lorakiln.services.fetch import fetch_query
from lorakiln.sources.http import FetchError


@functools.lru_cache(maxsize=1)
def catalogue():
    return tuple(demo_catalogue(8, seed=5, scale=0.2, near_duplicates=False))


def run(project, booru, progress=None, site="danbooru", **opts):
    net = {k: opts.pop(k) for k in list(opts) if k in FetchConfig.model_fields}
    cfg = FetchConfig(**{"rate": 500, "backoff": 0.01, "workers": 3, **net})
    q = SavedQuery(site=site, query=CHARACTER, base_url=booru.url, sort="newest", **opts)
    return fetch_query(project, q, cfg, progress or NullProgress(), environ={})


def gaps(reqs):
    return [b.t - a.t for a, b in zip(reqs, reqs[1:])]


def within_rate(reqs, rate, jitter=0.03):
    """Any k consecutive requests span at least (k-1)/rate seconds (less network jitter)."""
    t = [r.t for r in reqs]
    return all(t[j] - t[i] >= (j - i) / rate - jitter for i in range(len(t)) for j in range(i + 1, len(t)))


def test_rate_limit_holds_per_host_with_parallel_downloads(project):
    with BooruReplay(list(catalogue()), site="danbooru", file_host="localhost") as booru:
        run(project, booru, rate=10, workers=4, page_size=4)
        api, files = booru.api_requests(), booru.file_requests()
    assert len(api) == 3 and len(files) == len(catalogue())
    assert {f.headers["host"].split(":")[0] for f in files} == {"localhost"}
    # 10/s on each host, even with 4 download threads sharing the files host
    assert within_rate(api, 10) and within_rate(files, 10)
    assert files[-1].t - files[0].t < (len(files) - 1) / 10 + 0.5  # and not much slower than asked


def test_429_retry_after_is_honoured_over_backoff(project):
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        booru.fail("429", retry_after="0.4")
        r = run(project, booru)
        api = booru.api_requests()
    assert len(api) == 2 and api[0].query == api[1].query
    assert api[1].t - api[0].t >= 0.38  # backoff alone would be 0.01 s
    assert r.downloaded == len(catalogue())


def test_5xx_and_dropped_connections_are_retried_with_backoff(project):
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        booru.fail("500", times=2)
        booru.fail("drop", on="file", times=1)
        r = run(project, booru, backoff=0.1)
        api = booru.api_requests()
    assert len(api) == 3 and gaps(api)[0] >= 0.09 and gaps(api)[1] >= 0.19  # 0.1 s, then doubled
    assert r.downloaded == len(catalogue()) and not r.failed


def test_gives_up_clearly_when_told_to_wait_too_long(project):
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        booru.fail("429", retry_after="3600")
        with pytest.raises(FetchError, match=r"HTTP 429.*wait 3600s.*max_retry_wait"):
            run(project, booru)
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        booru.fail("503", times=None)
        with pytest.raises(FetchError, match=r"HTTP 503 \(gave up after 3 attempts\)"):
            run(project, booru, retries=2)


def test_html_page_instead_of_json_is_a_clear_error(project):
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        booru.fail("html", times=None)
        with pytest.raises(FetchError) as e:
            run(project, booru)
    msg = str(e.value)
    assert "HTML page instead of JSON" in msg and "Just a moment" in msg and "posts.json" in msg
    assert len(project.manifest()) == 0


def test_bad_files_are_recorded_and_the_batch_goes_on(project):
    posts = list(catalogue())
    bad = {"bad_md5": posts[0], "short": posts[1], "truncated": posts[2], "html": posts[3], "404": posts[4]}
    posts[5].deleted = True
    try:
        with BooruReplay(posts, site="danbooru") as booru:
            for kind, p in bad.items():
                booru.fail(kind, on="file", times=None, post_id=p.id)
            r = run(project, booru, retries=1)
    finally:
        posts[5].deleted = False
    m = project.manifest()
    reason = {int(rec.post_id): rec.reason for rec in m if rec.status == Status.error}
    assert reason[posts[0].id].startswith("md5 mismatch: the site says " + posts[0].md5)
    assert reason[posts[1].id].startswith("md5 mismatch")
    assert reason[posts[2].id].startswith("truncated download")
    assert reason[posts[3].id].startswith("HTML page instead of an image")
    assert reason[posts[4].id].startswith("HTTP 404")
    assert reason[posts[5].id] == "no file URL: deleted post"
    good = posts[6:]
    assert len(reason) == 6 and r.downloaded == len(good) and sum(r.failed.values()) == 6
    assert m.funnel()["main"]["error: md5 mismatch"] == 2
    names = sorted(p.name for p in project.images_dir.iterdir() if p.is_file())
    assert names == sorted(f"danbooru-{p.id}.{p.ext}" for p in good)  # no partial or bad files
    # a later run retries the failed items only (the site is fine now)
    with BooruReplay(posts, site="danbooru") as booru:
        r2 = run(project, booru)
        fetched = Counter(q.path for q in booru.file_requests())
    assert r2.downloaded == 6 and r2.skipped == len(good)
    assert set(fetched) == {booru.file_url(p).split(booru.url, 1)[1] for p in posts[:6]}
    assert all(rec.kept and rec.reason is None for rec in project.manifest())


def test_a_truncated_transfer_is_retried_within_the_run(project):
    posts = list(catalogue())
    with BooruReplay(posts, site="danbooru") as booru:
        booru.fail("truncated", on="file", times=1, post_id=posts[0].id)
        r = run(project, booru)
        n = Counter(q.path for q in booru.file_requests())
    assert r.downloaded == len(posts) and not r.failed and max(n.values()) == 2


def test_resume_after_interrupt_downloads_nothing_twice(project):
    posts = list(catalogue())
    with BooruReplay(posts, site="danbooru", file_delay=0.02) as booru:
        with pytest.raises(KeyboardInterrupt):
            run(project, booru, StopAfter(3, when="images"), workers=2)
        assert len(project.manifest()) == 3  # saved on the way out
        assert not list(project.images_dir.rglob(".*.part"))
        r = run(project, booru)
        per_file = Counter(q.path for q in booru.file_requests())
        api = booru.api_requests()
    assert sorted(per_file.values()) == [1] * len(posts)  # every file exactly once over both runs
    assert r.pages == 0 and r.cached_pages >= 1 and len(api) == 1  # pages came from cache/fetch/
    assert r.skipped == 3 and r.downloaded + r.adopted == len(posts) - 3
    m = project.manifest()
    assert len(m) == len(posts) and all(rec.kept for rec in m)
    for rec in m:
        assert file_digests(project.abs(rec.file))[0] == rec.md5


def test_refresh_asks_the_site_again_and_force_downloads_again(project):
    posts = list(catalogue())[:3]
    with BooruReplay(posts, site="danbooru") as booru:
        run(project, booru)
        r = run(project, booru)
        assert (r.pages, r.downloaded, r.skipped) == (0, 0, 3)
        cfg = FetchConfig(rate=500, backoff=0.01)
        q = SavedQuery(site="danbooru", query=CHARACTER, base_url=booru.url)
        r = fetch_query(project, q, cfg, NullProgress(), refresh=True, force=True, environ={})
        assert (r.pages, r.downloaded) == (1, 3)
        assert len(booru.file_requests()) == 6


def test_downscale_keeps_or_deletes_the_original(project):
    posts = list(catalogue())[:3]
    with BooruReplay(posts, site="danbooru") as booru:
        run(project, booru, max_short_side=64, keep_original=True)
    for rec in project.manifest():
        src = next(p for p in posts if p.id == int(rec.post_id))
        assert min(rec.width, rec.height) == 64 and rec.original == f"images/originals/{rec.id}.{src.ext}"
        assert file_digests(project.abs(rec.original))[0] == src.md5 == rec.md5
        assert file_digests(project.abs(rec.file))[1] == rec.sha256
    with BooruReplay(posts, site="gelbooru") as booru:
        r = run(project, booru, site="gelbooru", max_short_side=64)
        r2 = run(project, booru, site="gelbooru", max_short_side=64)
    assert r.downloaded == 3 and r2.skipped == 3
    recs = [x for x in project.manifest() if x.source == "gelbooru"]
    assert all(x.original is None and min(x.width, x.height) == 64 for x in recs)
    assert not list((project.images_dir / "originals").glob("gelbooru-*"))


def test_kill_9_midway_then_rerun_leaves_no_partial_and_no_duplicate(project, tmp_path):
    import threading

    posts = list(catalogue())
    newest_two = {p.id for p in sorted(posts, key=lambda p: p.id, reverse=True)[:2]}
    with BooruReplay(posts, site="danbooru") as booru:
        # every file but the two newest is held half-sent until the kill: the kill lands midway
        # whatever the machine's load (a poll racing free downloads let the fetch finish first)
        hold = threading.Event()
        for p in posts:
            if p.id not in newest_two:
                booru.fail("slow", on="file", times=None, post_id=p.id, chunk=64, interval=0.05,
                           limit_s=120, release=hold)
        env = {**os.environ, "KILN_FETCH__RATE": "50", "KILN_FETCH__WORKERS": "2",
               "PYTHONPATH": os.pathsep.join(sys.path)}
        cmd = [sys.executable, "-m", "lorakiln", "fetch", "danbooru", CHARACTER, "--base-url", booru.url,
               "--sort", "newest", "-p", str(project.root)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while len(list(project.images_dir.glob("danbooru-*"))) < 2:
                assert proc.poll() is None, "fetch ended before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            booru.faults.clear()
            hold.set()
        done_at_kill = {p.name for p in project.images_dir.glob("danbooru-*")}
        assert len(done_at_kill) == 2
        served_before = Counter(q.path for q in booru.file_requests())
        r = run(project, booru)
        per_file = Counter(q.path for q in booru.file_requests())
    assert not list(project.images_dir.rglob(".*.part"))
    m = project.manifest()
    assert len(m) == len(posts) and all(rec.kept for rec in m)
    for rec in m:
        assert file_digests(project.abs(rec.file))[0] == rec.md5
    by_name = {f"danbooru-{p.id}.{p.ext}": booru.file_url(p).split(booru.url, 1)[1] for p in posts}
    for name in done_at_kill:  # finished before the kill: never requested again
        assert per_file[by_name[name]] == served_before[by_name[name]] == 1
    assert r.downloaded + r.adopted + r.skipped == len(posts)
