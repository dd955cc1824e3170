"""`kiln fetch` against a hostile booru, downloads: deadlines, size caps, byte counts, schemes,
redirect loops, and the manifest saved while a download stalls."""

import threading
import time

import pytest
from booru_faults import fetch, hostile_booru, small_posts  # noqa: F401  (hostile_booru is a fixture)

from lorakiln.config.fetch import FetchConfig
from lorakiln.core.records import Status
from lorakiln.sources.http import FetchError


def reasons(project):
    return {int(r.post_id): r.reason for r in project.manifest() if r.status == Status.error}


def kept_files(project):
    return sorted(p.name for p in project.images_dir.iterdir() if p.is_file())


def test_a_file_served_slowly_stops_at_the_deadline_and_the_rest_goes_on(project, hostile_booru):
    booru = hostile_booru()
    slow = booru.posts[0]
    booru.fail("slow", on="file", post_id=slow.id, times=None, chunk=8, interval=0.05)
    r = fetch(project, booru, deadline=0.5)
    why = reasons(project)
    assert list(why) == [slow.id] and why[slow.id].startswith("too slow: ")
    assert "deadline=0.5s" in why[slow.id] and f"of {len(slow.image)} bytes" in why[slow.id]
    assert r.downloaded == len(booru.posts) - 1
    assert len([q for q in booru.file_requests() if str(slow.md5) in q.path]) == 1  # not retried
    assert not list(project.images_dir.rglob(".*.part"))


def test_an_api_page_served_slowly_stops_at_the_deadline(project, hostile_booru):
    booru = hostile_booru()
    booru.fail("slow", on="api", times=None, chunk=64, interval=0.05)
    with pytest.raises(FetchError, match=r"posts\.json.*too slow: .*deadline=0\.5s"):
        fetch(project, booru, deadline=0.5)


def test_the_manifest_is_saved_while_a_download_stalls(project, hostile_booru):
    booru = hostile_booru(small_posts(12))
    stalled, release = booru.posts[-1], threading.Event()  # the oldest: among the last to start
    booru.fail("slow", on="file", post_id=stalled.id, interval=0.02, release=release)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(fetch(project, booru, save_every=0.05, retries=0)))
    worker.start()
    try:
        on_disk, until = 0, time.monotonic() + 60
        while on_disk < 11 and worker.is_alive() and time.monotonic() < until:
            time.sleep(0.02)
            on_disk = len(project.manifest())  # what a kill -9 now would leave
        still_running = worker.is_alive()
    finally:
        release.set()
        worker.join()
    assert still_running and on_disk == 11
    assert {int(r.post_id) for r in project.manifest() if r.kept} == {p.id for p in booru.posts[:-1]}


def test_a_file_larger_than_the_site_says_stops_near_the_declared_size(project, hostile_booru):
    booru = hostile_booru()
    big = booru.posts[0]
    fault = booru.fail("oversize", on="file", post_id=big.id, size=64 << 20)
    r = fetch(project, booru)
    why = reasons(project)[big.id]
    assert why.startswith("too large: ") and f"the site says {len(big.image)} bytes" in why
    assert fault.options["sent"] < 32 << 20  # stopped long before the 64 MiB it was offered
    assert r.downloaded == len(booru.posts) - 1 and not list(project.images_dir.rglob(".*.part"))


def test_max_file_mb_caps_files_whose_size_the_site_does_not_give(project, hostile_booru):
    booru = hostile_booru()
    big = booru.posts[1]
    booru.fail("patch", post_id=big.id, times=None, fields={"file_size": None})
    booru.fail("oversize", on="file", post_id=big.id, size=8 << 20)
    fetch(project, booru, max_file_mb=1)
    assert reasons(project)[big.id].startswith("too large: more than max_file_mb=1 (1048576 bytes)")


def test_a_content_length_beyond_the_cap_is_refused_before_reading(project, hostile_booru):
    booru = hostile_booru()
    post = booru.posts[0]
    booru.fail("length", on="file", post_id=post.id, length=10**13)
    fetch(project, booru)
    why = reasons(project)[post.id]
    assert why.startswith("too large: the file is 10000000000000 bytes (Content-Length)"), why


def test_a_short_transfer_reports_the_bytes_that_arrived(project, hostile_booru):
    booru = hostile_booru()
    post = booru.posts[0]
    n = len(post.image)
    booru.fail("length", on="file", post_id=post.id, times=None, length=3 * n)
    fetch(project, booru, retries=1)
    assert reasons(project)[post.id].startswith(f"truncated download: connection closed after {n} of {3 * n} bytes")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.jpg", "file:///etc/passwd", "gopher://h/x.png"])
def test_file_urls_that_are_not_http_are_refused_at_once(project, hostile_booru, url):
    booru = hostile_booru()
    post = booru.posts[0]
    booru.fail("patch", post_id=post.id, times=None, fields={"file_url": url, "file_ext": "jpg"})
    r = fetch(project, booru, backoff=0.2)  # six attempts would take 6 s
    why = reasons(project)[post.id]
    assert why.startswith(f"refused: {url.split(':')[0]}:// URL (only http and https are fetched)")
    assert r.downloaded == len(booru.posts) - 1


def test_a_file_redirected_elsewhere_than_http_is_refused(project, hostile_booru):
    booru = hostile_booru()
    post = booru.posts[0]
    booru.fail("redirect", on="file", post_id=post.id, times=None, location="file:///etc/passwd")
    fetch(project, booru, backoff=0.2)
    assert reasons(project)[post.id].startswith("refused: file:// URL")


def test_redirect_loops_fail_clearly_for_pages_and_files(project, hostile_booru):
    booru = hostile_booru()
    post = booru.posts[0]
    booru.fail("redirect", on="file", post_id=post.id, times=None)
    r = fetch(project, booru)
    assert reasons(project)[post.id].startswith("redirect loop: more than 20 redirects")
    assert r.downloaded == len(booru.posts) - 1
    booru.fail("redirect", on="api", times=None)
    with pytest.raises(FetchError, match=r"posts\.json.*redirect loop"):
        fetch(project, booru, refresh=True)


def test_new_network_settings_have_real_ranges():
    with pytest.raises(ValueError):
        FetchConfig(deadline=0)
    with pytest.raises(ValueError):
        FetchConfig(max_file_mb=-1)
    with pytest.raises(ValueError):
        FetchConfig(save_every=float("inf"))
    assert FetchConfig().deadline == 600 and FetchConfig().max_file_mb == 200


def test_ctrl_c_does_not_wait_for_a_stalled_download(project, hostile_booru):
    from interrupts import StopAfter

    booru = hostile_booru(small_posts(8))
    stalled, release = booru.posts[-1], threading.Event()
    booru.fail("slow", on="file", post_id=stalled.id, interval=0.02, release=release)
    raised: list = []

    def run():
        try:
            fetch(project, booru, progress=StopAfter(len(booru.posts) - 1, when="images"), workers=2)
        except KeyboardInterrupt as e:
            raised.append(e)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=20)  # the stall lasts 30 s (and the deadline 600 s) unless cancelled
    still_waiting = worker.is_alive()
    release.set()
    worker.join()
    assert not still_waiting and raised
    assert len(project.manifest()) == len(booru.posts) - 1  # saved on the way out
    assert not list(project.images_dir.rglob(".*.part"))
