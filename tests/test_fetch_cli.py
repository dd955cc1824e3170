"""`kiln fetch` end to end through the CLI against the local replay server."""

import functools

import tomlkit

from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue


@functools.lru_cache(maxsize=1)
def catalogue():
    return tuple(demo_catalogue(6, seed=7, scale=0.2))


def fast(monkeypatch):
    monkeypatch.setenv("KILN_FETCH__RATE", "500")
    monkeypatch.setenv("KILN_FETCH__BACKOFF", "0.01")
    monkeypatch.setenv("KILN_CONFIG_DIR", "/nonexistent-kiln-config")


def test_fetch_save_then_replay_saved_queries(cli, project, monkeypatch):
    fast(monkeypatch)
    posts = list(catalogue())
    with BooruReplay(posts, site="danbooru") as booru:
        code, out = cli("fetch", "danbooru", f"{CHARACTER} solo | {CHARACTER} coat", "--base-url", booru.url,
                        "--top", "4", "--blacklist", "from_behind", "--prepend-tags", "kafka_hsr",
                        "--replace-underscores", "--subset", "alt", "--save", cwd=project.root)
        assert code == 0, out
        assert "saved the query" in out and "4 downloaded" in out and "4 selected" in out
        doc = tomlkit.parse(project.config_path.read_text()).unwrap()
        (saved,) = doc["fetch"]["queries"]
        assert saved == {"site": "danbooru", "query": f"{CHARACTER} solo | {CHARACTER} coat",
                         "base_url": booru.url, "top": 4, "blacklist": ["from_behind"],
                         "prepend_tags": ["kafka_hsr"], "replace_underscores": True, "subset": "alt"}
        recs = list(project.manifest())
        assert len(recs) == 4 and {r.subset for r in recs} == {"alt"}
        from lorakiln.services.caption import TagView

        view = TagView(project)
        assert all(view.initial(r)[0] == "kafka_hsr" and "kilnchan_(kiln_demo)" in view.initial(r) for r in recs)
        assert doc["caption"] == {"underscores": False}
        assert all("from_behind" not in r.tags["general"] for r in recs)
        n_api = len(booru.api_requests())

        code, out = cli("fetch", cwd=project.root)  # no arguments: replay saved queries
        assert code == 0, out
        assert "0 downloaded" in out and "4 already fetched" in out and "0 requested" in out
        assert len(booru.api_requests()) == n_api and len(booru.file_requests()) == 4

        code, out = cli("fetch", "danbooru", f"{CHARACTER} solo | {CHARACTER} coat", "--base-url", booru.url,
                        "--top", "4", "--blacklist", "from_behind", "--prepend-tags", "kafka_hsr",
                        "--replace-underscores", "--subset", "alt", "--save", cwd=project.root)
        assert "already saved" in out
    code, out = cli("status", cwd=project.root)
    assert code == 0 and "subset alt" in out


def test_cli_errors_are_one_clear_line(cli, project, monkeypatch):
    fast(monkeypatch)
    code, out = cli("fetch", "nosuchbooru", "a", cwd=project.root)
    assert code == 1 and "unknown site 'nosuchbooru'" in out and "danbooru" in out
    code, out = cli("fetch", cwd=project.root)
    assert code == 1 and "no saved queries" in out and "--save" in out
    code, out = cli("fetch", "danbooru", "a", "--rating", "x", cwd=project.root)
    assert code == 1 and "--rating" in out and "unknown rating" in out
    code, out = cli("fetch", "danbooru", cwd=project.root)
    assert code == 1 and "give a QUERY" in out
    code, out = cli("fetch", "--top", "5", cwd=project.root)
    assert code == 1 and "query options need SITE and QUERY" in out


def test_list_sites(cli, project):
    code, out = cli("fetch", "--list-sites", cwd=project.root)
    assert code == 0
    for site in ("danbooru", "gelbooru", "safebooru", "e621", "e926"):
        assert site in out


def test_credentials_never_reach_any_written_file(cli, project, monkeypatch, tmp_path):
    fast(monkeypatch)
    dan_key, gel_key, gel_user = "DANBOORU-SECRET-KEY-42", "GELBOORU-SECRET-KEY-77", "918273"
    monkeypatch.setenv("KILN_DANBOORU_LOGIN", "alice")
    monkeypatch.setenv("KILN_DANBOORU_API_KEY", dan_key)
    monkeypatch.setenv("KILN_GELBOORU_USER_ID", gel_user)
    monkeypatch.setenv("KILN_GELBOORU_API_KEY", gel_key)
    posts = list(catalogue())
    outputs = []
    with BooruReplay(posts, site="danbooru", auth=("alice", dan_key)) as booru:
        booru.fail("500", times=1)
        booru.fail("bad_md5", on="file", times=None, post_id=posts[0].id)
        code, out = cli("fetch", "danbooru", CHARACTER, "--base-url", booru.url, "--save", cwd=project.root)
        outputs.append(out)
        assert code == 0, out
    with BooruReplay(posts, site="gelbooru", auth=(gel_user, gel_key)) as booru:
        booru.fail("html", on="file", times=None, post_id=posts[1].id)
        code, out = cli("fetch", "gelbooru", CHARACTER, "--base-url", booru.url, "--save", cwd=project.root)
        outputs.append(out)
        assert code == 0, out
        assert booru.api_requests()[0].query["api_key"] == gel_key  # it was really sent
        booru.fail("html", times=None)  # an API failure: the error text must not carry the key
        code, out = cli("fetch", "gelbooru", CHARACTER, "--base-url", booru.url, "--refresh", cwd=project.root)
        outputs.append(out)
        assert code == 1 and "HTML page instead of JSON" in out
    recs = {r.id: r for r in project.manifest()}
    assert recs[f"danbooru-{posts[0].id}"].reason.startswith("md5 mismatch")
    assert recs[f"gelbooru-{posts[1].id}"].reason.startswith("HTML page")
    assert list((project.cache_dir / "fetch").rglob("*.json"))
    written = [p for p in project.root.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        for secret in (dan_key, gel_key, f"user_id={gel_user}"):
            assert secret.encode() not in data, f"{secret} leaked into {path}"
    for out in outputs:
        assert dan_key not in out and gel_key not in out


def test_deadline_and_size_cap_flags(cli, project, monkeypatch):
    fast(monkeypatch)
    with BooruReplay(list(catalogue()), site="danbooru") as booru:
        code, out = cli("fetch", "danbooru", CHARACTER, "--base-url", booru.url, "--max-file-mb", "0.0001",
                        cwd=project.root)
    assert code == 0, out
    reasons = [r.reason or "" for r in project.manifest()]
    assert reasons and all(r.startswith("too large") for r in reasons)
    code, out = cli("fetch", "danbooru", CHARACTER, "--deadline", "0", cwd=project.root)
    assert code == 1 and "deadline" in out
