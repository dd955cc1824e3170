"""A local imageboard: a real HTTP server on 127.0.0.1 answering like Danbooru, Gelbooru,
safebooru.org or e621 (reference/datasets.md §9), for the tests and the offline demo.

    with BooruReplay(demo_catalogue(), site="danbooru") as booru:   # demo_catalogue: demo/catalogue.py
        kiln fetch danbooru "kilnchan_(kiln_demo) solo" --base-url {booru.url}

It filters posts by the searched tags (`-tag`, `rating:`, `score:>=N`, `id:<N`, score order),
pages them (`limit`, `page=N`, `page=b<id>`/`a<id>`, `pid`), serves the image files, enforces
auth and tag limits when asked, injects failures on demand (demo/faults.py: 429 with Retry-After,
5xx, an HTML page, truncated, corrupted, slow, oversized or mislabelled files, malformed post
fields, redirect loops, a page echoing the request's headers...) and logs every request (path,
query, headers, time) so tests can check paging, rates and headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from lorakiln.demo import faults
from lorakiln.demo.faults import Fault


SITES = ("danbooru", "gelbooru", "safebooru", "e621")
PAGE_MAX = {"danbooru": 200, "gelbooru": 100, "safebooru": 1000, "e621": 320}
CANON = ("general", "sensitive", "questionable", "explicit")
_RATING_OUT = {
    "danbooru": {"general": "g", "sensitive": "s", "questionable": "q", "explicit": "e"},
    "e621": {"general": "s", "sensitive": "s", "questionable": "q", "explicit": "e"},
    "gelbooru": {r: r for r in CANON},
    "safebooru": {"general": "safe", "sensitive": "sensitive", "questionable": "questionable", "explicit": "explicit"},
}
_RATING_IN = {
    "danbooru": {"g": {"general"}, "s": {"sensitive"}, "q": {"questionable"}, "e": {"explicit"},
                 "general": {"general"}, "sensitive": {"sensitive"}, "questionable": {"questionable"},
                 "explicit": {"explicit"}, "safe": {"sensitive"}},
    "e621": {"s": {"general", "sensitive"}, "safe": {"general", "sensitive"}, "q": {"questionable"},
             "questionable": {"questionable"}, "e": {"explicit"}, "explicit": {"explicit"}},
    "gelbooru": {"general": {"general"}, "safe": {"general"}, "sensitive": {"sensitive"},
                 "questionable": {"questionable"}, "explicit": {"explicit"}},
}
_RATING_IN["safebooru"] = _RATING_IN["gelbooru"]
_FREE = ("rating:", "status:deleted", "limit:")


@dataclass
class ReplayPost:
    id: int
    image: bytes
    ext: str
    width: int
    height: int
    tags: dict[str, list[str]]  # Danbooru/e621 categories: general, character, copyright, artist, meta, species...
    rating: str = "general"  # one of CANON
    score: int = 0
    created_at: datetime = field(default_factory=lambda: datetime(2024, 1, 1, tzinfo=timezone.utc))
    deleted: bool = False  # listed without a file URL, as deleted or hidden posts are

    @property
    def md5(self) -> str:
        return hashlib.md5(self.image).hexdigest()

    @property
    def all_tags(self) -> set[str]:
        return {t for tags in self.tags.values() for t in tags}


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    t: float  # time.monotonic()
    kind: str  # api | file | other


class BooruReplay:
    """The server; use as a context manager. `url` is its base URL."""

    def __init__(self, posts: list[ReplayPost], site: str = "danbooru", *, page_max: int | None = None,
                 max_page: int | None = None, tag_limit: int | None = None,
                 auth: tuple[str, str] | None = None, file_host: str = "127.0.0.1",
                 file_delay: float = 0.0, check_user_agent: bool | None = None):
        if site == "e926":
            site = "e621"
        if site not in SITES:
            raise ValueError(f"unknown replay site {site!r}; known: {', '.join(SITES)}")
        self.site, self.posts = site, sorted(posts, key=lambda p: -p.id)
        self.page_max = page_max or PAGE_MAX[site]
        self.max_page, self.tag_limit, self.auth = max_page, tag_limit, auth
        self.file_host, self.file_delay = file_host, file_delay
        self.check_user_agent = (site == "e621") if check_user_agent is None else check_user_agent
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._port: int | None = None
        self._files: dict[str, ReplayPost] = {}

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "BooruReplay":
        handler = type("Handler", (_Handler,), {"replay": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._files = {urlsplit(self.file_url(p)).path: p for p in self.posts}
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "BooruReplay":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port (still known after stop(), so recorded URLs can be compared)."""
        assert self._port is not None, "start the server first"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test helpers ---------------------------------------------------------------------------
    def fail(self, kind: str, on: str = "api", times: int | None = 1, retry_after: str | None = None,
             post_id: int | None = None, **options) -> Fault:
        """Inject a fault (kinds and their options: demo/faults.py)."""
        f = Fault(kind, on, times, retry_after, post_id, options)
        with self._lock:
            self.faults.append(f)
        return f

    def api_requests(self) -> list[Request]:
        return [r for r in self.requests if r.kind == "api"]

    def file_requests(self) -> list[Request]:
        return [r for r in self.requests if r.kind == "file"]

    def file_url(self, p: ReplayPost) -> str:
        base, m = f"http://{self.file_host}:{self.port}", p.md5
        if self.site == "danbooru":
            return f"{base}/data/original/{m[:2]}/{m[2:4]}/{m}.{p.ext}"
        if self.site == "e621":
            return f"{base}/data/{m[:2]}/{m[2:4]}/{m}.{p.ext}"
        if self.site == "safebooru":
            return f"{base}/images/{p.id // 1000}/{m}.{p.ext}"
        return f"{base}/images/{m[:2]}/{m[2:4]}/{m}.{p.ext}"

    # -- internals used by the handler ---------------------------------------------------------
    def _log(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def _take_fault(self, kind: str, post: ReplayPost | None) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.on == kind and (f.post_id is None or kind == "api" or (post is not None and post.id == f.post_id)) \
                        and (f.times is None or f.times > 0):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    def search(self, tags: str) -> tuple[list[ReplayPost], str | None]:
        terms = tags.split()
        counted = [t for t in terms if not t.lstrip("-").lower().startswith(_FREE)]
        if self.tag_limit is not None and len(counted) > self.tag_limit:
            return [], f"You cannot search for more than {self.tag_limit} tags at a time."
        posts, by_score = list(self.posts), False
        for term in terms:
            neg, bare = term.startswith("-"), term.lstrip("-")
            name, _, value = bare.partition(":")
            if name in ("order", "sort") and value.startswith("score"):
                by_score = True
                continue
            test = self._term_test(name.lower(), value, bare)
            posts = [p for p in posts if test(p) != neg]
        if by_score:
            posts.sort(key=lambda p: (-p.score, -p.id))
        return posts, None

    def _term_test(self, name: str, value: str, bare: str):
        if name == "rating" and value:
            wanted = set().union(*(_RATING_IN[self.site].get(v, {v}) for v in value.lower().split(",")))
            return lambda p: p.rating in wanted
        if name in ("score", "id") and value:
            return _compare(name, value)
        return lambda p: bare in p.all_tags

    def render(self, posts: list[ReplayPost], offset: int, limit: int, total: int):
        if self.site == "danbooru":
            return [_danbooru(p, self) for p in posts]
        if self.site == "e621":
            return {"posts": [_e621(p, self) for p in posts]}
        if self.site == "safebooru":
            return [_gelbooru(p, self) for p in posts] if posts else None
        body = {"@attributes": {"limit": limit, "offset": offset, "count": total}}
        if posts:
            body["post"] = [_gelbooru(p, self) for p in posts]
        return body


def _compare(name: str, value: str):
    for op in (">=", "<=", ">", "<", ""):
        if value.startswith(op) and value[len(op):].lstrip("-").isdigit():
            n = int(value[len(op):])
            break
    else:
        return lambda p: False
    get = (lambda p: p.score) if name == "score" else (lambda p: p.id)
    return {">=": lambda p: get(p) >= n, "<=": lambda p: get(p) <= n, ">": lambda p: get(p) > n,
            "<": lambda p: get(p) < n, "": lambda p: get(p) == n}[op]


# -- JSON shapes, as each site answers ----------------------------------------------------------
def _iso(d: datetime) -> str:
    return d.isoformat(timespec="milliseconds")


def _danbooru(p: ReplayPost, r: BooruReplay) -> dict:
    cats = ("general", "character", "copyright", "artist", "meta")
    d = {
        "id": p.id, "created_at": _iso(p.created_at), "uploader_id": 1, "score": p.score,
        "source": "", "last_comment_bumped_at": None, "rating": _RATING_OUT["danbooru"][p.rating],
        "image_width": p.width, "image_height": p.height,
        "tag_string": " ".join(sorted(p.all_tags)), "fav_count": max(0, p.score),
        "file_ext": p.ext, "last_noted_at": None, "parent_id": None, "has_children": False,
        "approver_id": None, "file_size": len(p.image), "up_score": max(0, p.score), "down_score": 0,
        "is_pending": False, "is_flagged": False, "is_deleted": p.deleted, "tag_count": len(p.all_tags),
        "updated_at": _iso(p.created_at), "is_banned": False, "pixiv_id": None, "last_commented_at": None,
        "has_active_children": False, "bit_flags": 0, "has_large": False, "has_visible_children": False,
        **{f"tag_string_{c}": " ".join(p.tags.get(c, [])) for c in cats},
        **{f"tag_count_{c}": len(p.tags.get(c, [])) for c in cats},
    }
    if not p.deleted:
        url = r.file_url(p)
        d.update(md5=p.md5, file_url=url, large_file_url=url, preview_file_url=url.replace("/original/", "/preview/"),
                 media_asset={"id": p.id, "md5": p.md5, "file_ext": p.ext, "file_size": len(p.image),
                              "image_width": p.width, "image_height": p.height,
                              "variants": [{"type": "original", "url": url, "width": p.width,
                                            "height": p.height, "file_ext": p.ext}]})
    return d


def _e621(p: ReplayPost, r: BooruReplay) -> dict:
    cats = ("general", "artist", "contributor", "copyright", "character", "species", "invalid", "meta", "lore")
    url = None if p.deleted else r.file_url(p)
    return {
        "id": p.id, "created_at": _iso(p.created_at), "updated_at": _iso(p.created_at),
        "file": {"width": p.width, "height": p.height, "ext": p.ext, "size": len(p.image), "md5": p.md5, "url": url},
        "preview": {"width": 150, "height": 150, "url": url},
        "sample": {"has": False, "height": p.height, "width": p.width, "url": url, "alternates": {}},
        "score": {"up": max(0, p.score), "down": 0, "total": p.score},
        "tags": {c: list(p.tags.get(c, [])) for c in cats},
        "locked_tags": [], "change_seq": p.id * 7,
        "flags": {"pending": False, "flagged": False, "note_locked": False, "status_locked": False,
                  "rating_locked": False, "deleted": p.deleted},
        "rating": _RATING_OUT["e621"][p.rating], "fav_count": max(0, p.score), "sources": [], "pools": [],
        "relationships": {"parent_id": None, "has_children": False, "has_active_children": False, "children": []},
        "approver_id": None, "uploader_id": 1, "description": "", "comment_count": 0,
        "is_favorited": False, "has_notes": False, "duration": None,
    }


def _gelbooru(p: ReplayPost, r: BooruReplay) -> dict:
    safe = r.site == "safebooru"
    url = "" if p.deleted else r.file_url(p)
    directory = str(p.id // 1000) if safe else f"{p.md5[:2]}/{p.md5[2:4]}"
    d = {
        "id": p.id, "score": p.score, "width": p.width, "height": p.height,
        "directory": directory if not p.deleted else "", "image": f"{p.md5}.{p.ext}" if not p.deleted else "",
        "rating": _RATING_OUT[r.site][p.rating], "source": "", "change": int(p.created_at.timestamp()),
        "owner": "demo", "parent_id": 0, "sample": False, "sample_height": 0, "sample_width": 0,
        "tags": " ".join(sorted(p.all_tags)), "file_url": url, "preview_url": url,
        "status": "deleted" if p.deleted else "active", "has_notes": "false",
    }
    if safe:
        d.update(hash=p.md5, comment_count=0)
    else:
        d.update(md5=p.md5, created_at=p.created_at.strftime("%a %b %d %H:%M:%S %z %Y"), creator_id=1,
                 title="", has_comments="false", sample_url=url, post_locked=0, has_children="false",
                 preview_height=150, preview_width=150)
    return d


# -- the request handler ---------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    replay: BooruReplay
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        r = self.replay
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        post = r._files.get(parts.path)
        kind = "file" if post else ("api" if self._is_api(parts.path, query) else "other")
        r._log(Request(parts.path, query, {k.lower(): v for k, v in self.headers.items()}, time.monotonic(), kind))
        fault = r._take_fault(kind, post) if kind != "other" else None
        if fault and faults.serve(self, fault, post):
            return
        if kind == "file":
            return self._file(post, fault)
        if kind == "api":
            return self._api(query, fault)
        self._send(404, b"<html><body>404 Not Found</body></html>", "text/html")

    def _is_api(self, path: str, q: dict) -> bool:
        if self.replay.site in ("danbooru", "e621"):
            return path == "/posts.json"
        return path == "/index.php" and q.get("page") == "dapi" and q.get("s") == "post"

    def _api(self, q: dict, fault: Fault | None) -> None:
        r = self.replay
        denied = self._denied(q)
        if denied:
            return self._json(*denied)
        posts, error = r.search(q.get("tags", ""))
        if error:
            return self._json(422, {"success": False, "error": "PostQuery::TagLimitError", "message": error})
        limit = max(1, min(int(q.get("limit") or 20), r.page_max))
        page = q.get("page", "1") if r.site in ("danbooru", "e621") else None
        if page and page[:1] in "ab" and page[1:].isdigit():
            n = int(page[1:])
            chosen = [p for p in posts if p.id < n][:limit] if page[0] == "b" else \
                sorted([p for p in posts if p.id > n], key=lambda p: p.id)[:limit][::-1]
            offset = 0
        else:
            number = int(page) if page else int(q.get("pid") or 0) + 1
            if r.max_page is not None and number > r.max_page:
                return self._json(410, {"success": False, "message": f"You cannot go beyond page {r.max_page}."})
            offset = (number - 1) * limit
            chosen = posts[offset:offset + limit]
        if fault is not None and fault.kind == "empty":
            chosen = []
        self._json(200, faults.patch_body(r.render(chosen, offset, limit, len(posts)), fault))

    def _denied(self, q: dict):
        r = self.replay
        ua = self.headers.get("User-Agent", "")
        if r.check_user_agent and (not ua or ua.startswith("Mozilla/")):
            return 403, {"success": False, "reason": "A descriptive User-Agent naming you is required."}
        if r.auth is None:
            return None
        if r.site in ("gelbooru", "safebooru"):
            ok = q.get("user_id") == r.auth[0] and q.get("api_key") == r.auth[1]
        else:
            want = "Basic " + base64.b64encode(f"{r.auth[0]}:{r.auth[1]}".encode()).decode()
            ok = self.headers.get("Authorization") == want
        return None if ok else (401, {"success": False, "message": "Authentication required."})

    def _file(self, post: ReplayPost, fault: Fault | None) -> None:
        r = self.replay
        if r.file_delay:
            time.sleep(r.file_delay)
        self._send(200, faults.file_body(fault, post.image), faults.content_type(post))

    def _json(self, status: int, body) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self._send(status, data, "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
