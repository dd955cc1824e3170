"""Secrets stay out of every message and file, whatever form a hostile site echoes them in:
plain, base64 of login:key or of the key alone, URL- or percent-encoded, JSON-escaped."""

import base64
import json
import re
from urllib.parse import quote, quote_plus

import pytest
from booru_faults import fetch, hostile_booru  # noqa: F401  (hostile_booru is a fixture)

from lorakiln.config.credentials import redact_forms as redact, secret_forms
from lorakiln.sources.http import FetchError

LOGIN, KEY = "alice_k", "s3cr3t/Key+with=odd&chars~9"
DAN_ENV = {"KILN_DANBOORU_LOGIN": LOGIN, "KILN_DANBOORU_API_KEY": KEY}
GEL_ENV = {"KILN_GELBOORU_USER_ID": "424242", "KILN_GELBOORU_API_KEY": KEY}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(login=LOGIN, key=KEY) -> list[str]:
    pair = b64(f"{login}:{key}")
    return [key, pair, pair.rstrip("="), quote(pair, safe=""), b64(key), b64(key).rstrip("="),
            base64.urlsafe_b64encode(key.encode()).decode(), quote(key, safe=""), lower_hex(quote(key, safe="")),
            quote_plus(key), json.dumps(key)[1:-1]]


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def assert_clean(text: str, where: str = "message") -> None:
    for f in forms():
        assert f not in text, f"{f!r} in the {where}: {text[:400]}"


def written_text(project) -> str:
    return "\n".join(p.read_text("utf-8", "replace") for p in project.root.rglob("*")
                     if p.is_file() and p.suffix in (".json", ".jsonl", ".toml"))


def leaks_key(text: str) -> bool:
    """Whether any base64 run left in `text` decodes to 4 or more consecutive characters of KEY."""
    for piece in text.split("***"):
        for start in range(4):
            run = piece[start:][: (len(piece) - start) // 4 * 4]
            try:
                raw = base64.b64decode(run)
            except ValueError:
                continue
            if any(KEY[i:i + 4].encode() in raw for i in range(len(KEY) - 3)):
                return True
    return False


@pytest.mark.parametrize("status", [401, 500])
def test_an_error_echoing_the_authorization_header_shows_no_form_of_the_key(project, hostile_booru, status):
    booru = hostile_booru(auth=(LOGIN, KEY))
    booru.fail("echo", times=None, status=status)
    with pytest.raises(FetchError) as e:
        fetch(project, booru, environ=DAN_ENV, retries=1)
    msg = str(e.value)
    assert f"HTTP {status}" in msg and "Authorization: Basic ***" in msg
    assert_clean(msg)


def test_an_error_echoing_the_query_string_shows_no_form_of_the_key(project, hostile_booru):
    booru = hostile_booru(site="gelbooru", auth=("424242", KEY))
    booru.fail("echo", times=None, status=403)
    with pytest.raises(FetchError) as e:
        fetch(project, booru, environ=GEL_ENV)
    msg = str(e.value)
    assert "HTTP 403" in msg and "api_key=***" in msg  # the echoed request line, percent-encoded key masked
    assert_clean(msg)


def test_a_refusal_in_a_page_body_shows_no_form_of_the_key(project, hostile_booru):
    booru = hostile_booru(auth=(LOGIN, KEY))
    booru.fail("json", times=None, body={"success": False, "message": f"bad login {LOGIN}:{KEY}, "
                                          f"header Basic {b64(f'{LOGIN}:{KEY}')} key {quote_plus(KEY)}"})
    with pytest.raises(FetchError) as e:
        fetch(project, booru, environ=DAN_ENV)
    assert "refused the search" in str(e.value)
    assert_clean(str(e.value))


def test_secrets_echoed_inside_posts_reach_no_file_and_no_note(project, hostile_booru):
    booru = hostile_booru(auth=(LOGIN, KEY))
    pair = b64(f"{LOGIN}:{KEY}")
    p0, p1 = booru.posts[0], booru.posts[1]
    echoed = f"{b64(KEY)} {quote(KEY, safe='')}"
    booru.fail("patch", times=None, posts={p0.id: {"md5": f"Basic {pair}"},  # malformed: a note
                                           p1.id: {"tag_string_meta": echoed}})
    r = fetch(project, booru, environ=DAN_ENV)
    assert r.excluded["malformed post"] == 1 and r.downloaded == len(booru.posts) - 1
    assert_clean("\n".join(r.notes), "notes")
    assert_clean(written_text(project), "project files")
    assert "***" in project.manifest().get(f"danbooru-{p1.id}").tags["meta"]


def test_the_cli_prints_no_form_of_the_key(cli, project, hostile_booru, monkeypatch):
    booru = hostile_booru(auth=(LOGIN, KEY))
    booru.fail("echo", times=None, status=401)
    for k, v in DAN_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KILN_CONFIG_DIR", str(project.root / "no-config"))
    code, out = cli("fetch", "danbooru", "solo", "--base-url", booru.url, "-p", project.root)
    assert code == 1 and "HTTP 401" in out
    assert_clean(out, "CLI output")


def test_secret_forms_cover_every_encoding_and_alignment():
    fs = secret_forms([LOGIN, KEY], basic=(LOGIN, KEY))
    for f in forms():
        assert redact(f"<{f}>", fs) == "<***>", f
    for pad in ("", "x", "xy", "{\"k\": \""):  # the key somewhere inside a longer base64 text
        text = b64(f"{pad}{KEY}\"}} and more")
        assert leaks_key(text) and not leaks_key(redact(text, fs))
    assert redact("plain words stay", fs) == "plain words stay"
    assert secret_forms(["ab", "", None]) == []  # too short to mask without masking everything


def test_the_http_library_logs_show_no_form_of_the_key(project, hostile_booru):
    import logging

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    keep, loggers = Keep(), [logging.getLogger(n) for n in ("httpx", "httpcore")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.DEBUG)
    try:
        booru = hostile_booru(site="gelbooru", auth=("424242", KEY))
        fetch(project, booru, environ=GEL_ENV, top=1)
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(keep)
            lg.setLevel(level)
    requests = [line for line in keep.lines if line.startswith("HTTP Request: GET") and "index.php" in line]
    assert requests and all("api_key=***" in line for line in requests)
    assert_clean("\n".join(keep.lines), "logs")
