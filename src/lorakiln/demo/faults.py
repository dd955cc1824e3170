"""Faults the local imageboard (booru_server.py) can inject, one request at a time.

A `Fault` is taken by the next matching request (`times` of them, or every one with None); one
fault answers a request, the earliest added first (use `posts=` to patch several posts at once);
`on` says which requests ("api" pages or "file" downloads) and `post_id` narrows file faults to
one post's file and field patches to one post. Kinds, with their `options`:

  403 404 429 500 503    an HTML error page with that status (`retry_after` adds Retry-After)
  html                   a Cloudflare-style "Just a moment..." page with status 200
  drop                   close the connection without answering
  empty                  (api) an empty result page
  truncated              (file) the full Content-Length declared, half the body sent, then closed
  short                  (file) half the body with an honest Content-Length
  bad_md5                (file) the last bytes flipped
  slow                   the body dribbled out: `chunk` bytes every `interval` seconds
  oversize               (file) the image followed by `size` bytes of padding, no Content-Length
  length                 (file) Content-Length says `length`, the real body is sent, then closed
  redirect               302 to `location` (default: the same URL again, a redirect loop)
  echo                   status `status` (500) whose JSON message repeats the request line and headers
  json                   status `status` (200) with `body` as the JSON answer (a page of the wrong shape)
  patch                  (api) the post's JSON fields replaced by `fields` (dicts merge: e621's "file");
                         `posts={id: fields, ...}` patches several posts with one fault
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the handler lives in booru_server.py, which imports this module
    from lorakiln.demo.booru_server import ReplayPost

CLOUDFLARE = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
              b"<body><h1>Checking your browser before accessing the site.</h1></body></html>")
STATUS_KINDS = ("403", "404", "429", "500", "503")


@dataclass
class Fault:
    """One injected failure (kinds and options: see the module docstring)."""

    kind: str
    on: str = "api"  # "api" or "file"
    times: int | None = 1  # None: every time
    retry_after: str | None = None
    post_id: int | None = None  # file faults: only this post's file; patch: only this post
    options: dict[str, Any] = field(default_factory=dict)


def serve(handler, fault: Fault, post: "ReplayPost | None") -> bool:
    """Answer the request with the fault, if it is one that replaces the whole answer."""
    serve_one = _SERVERS.get(fault.kind)
    if serve_one is None or (fault.kind in _FILE_ONLY and post is None):
        return False
    serve_one(handler, fault, post)
    return True


def patch_body(body: Any, fault: Fault | None) -> Any:
    """An API page with the fault's `fields` written over the matching posts."""
    if fault is None or fault.kind != "patch":
        return body
    posts = (body.get("posts") or body.get("post") or []) if isinstance(body, dict) else (body or [])
    by_id = fault.options.get("posts", {})
    for raw in posts:
        if raw.get("id") in by_id:
            _merge(raw, by_id[raw["id"]])
        elif "fields" in fault.options and (fault.post_id is None or raw.get("id") == fault.post_id):
            _merge(raw, fault.options["fields"])
    return body


def file_body(fault: Fault | None, data: bytes) -> bytes:
    """The image bytes after a fault that spoils them but still answers normally."""
    if fault is not None and fault.kind == "short":
        return data[: len(data) // 2]
    if fault is not None and fault.kind == "bad_md5":
        return data[:-8] + bytes(b ^ 0xFF for b in data[-8:])
    return data


def content_type(post: "ReplayPost") -> str:
    return "image/png" if post.ext == "png" else f"image/{post.ext.replace('jpg', 'jpeg')}"


def _merge(raw: dict, fields: dict) -> None:
    for k, v in fields.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            _merge(raw[k], v)
        else:
            raw[k] = v


# -- whole-answer faults ---------------------------------------------------------------------
def _status(h, f: Fault, post) -> None:
    headers = {"Retry-After": f.retry_after} if f.retry_after is not None else {}
    h._send(int(f.kind), b"<html><body><h1>%s</h1></body></html>" % f.kind.encode(), "text/html", headers)


def _html(h, f: Fault, post) -> None:
    h._send(200, CLOUDFLARE, "text/html; charset=UTF-8")


def _drop(h, f: Fault, post) -> None:
    h.close_connection = True


def _truncated(h, f: Fault, post) -> None:
    _head(h, 200, content_type(post), len(post.image))
    h.wfile.write(post.image[: len(post.image) // 2])
    h.close_connection = True


def _slow(h, f: Fault, post) -> None:
    """Dribble the body; stops when the client hangs up, when `release` (a threading.Event) is set,
    or after `limit_s` (30 s by default)."""
    data = post.image if post is not None else b"[" + b" " * 4000 + b"]"
    ctype = content_type(post) if post is not None else "application/json"
    chunk, interval = int(f.options.get("chunk", 1)), float(f.options.get("interval", 0.05))
    _head(h, 200, ctype, len(data))
    end, release = time.monotonic() + float(f.options.get("limit_s", 30)), f.options.get("release")
    for i in range(0, len(data), chunk):
        if not _write(h, data[i:i + chunk]) or time.monotonic() > end or (release and release.is_set()):
            break
        time.sleep(interval)
    h.close_connection = True


def _oversize(h, f: Fault, post) -> None:
    """The real image, then padding until `size` bytes are sent or the client hangs up;
    `options["sent"]` counts what went out."""
    _head(h, 200, content_type(post), None)
    left, pad, sent = int(f.options.get("size", 300 << 20)), b"\0" * (1 << 16), 0
    piece = post.image
    while left > 0 and _write(h, piece[:left]):
        sent, left, piece = sent + min(len(piece), left), left - len(piece), pad
    f.options["sent"] = sent
    h.close_connection = True


def _length(h, f: Fault, post) -> None:
    _head(h, 200, content_type(post), int(f.options["length"]))
    _write(h, post.image)
    h.close_connection = True


def _redirect(h, f: Fault, post) -> None:
    h._send(302, b"", "text/plain", {"Location": f.options.get("location", h.path)})


def _echo(h, f: Fault, post) -> None:
    seen = "; ".join(f"{k}: {v}" for k, v in h.headers.items() if k.lower() not in ("accept", "connection"))
    message = f"cannot serve this request (headers: {seen}; path: {h.path})"
    h._send(int(f.options.get("status", 500)), json.dumps({"success": False, "message": message}).encode(),
            "application/json")


def _json(h, f: Fault, post) -> None:
    h._send(int(f.options.get("status", 200)), json.dumps(f.options.get("body")).encode(), "application/json")


def _head(h, status: int, ctype: str, length: int | None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    if length is not None:
        h.send_header("Content-Length", str(length))
    h.send_header("Connection", "close")
    h.end_headers()


def _write(h, data: bytes) -> bool:
    try:
        h.wfile.write(data)
        h.wfile.flush()
        return True
    except OSError:  # the client gave up: what a fault that never ends waits for
        return False


_SERVERS = {**{k: _status for k in STATUS_KINDS}, "html": _html, "drop": _drop, "truncated": _truncated,
            "slow": _slow, "oversize": _oversize, "length": _length, "redirect": _redirect, "echo": _echo,
            "json": _json}
_FILE_ONLY = frozenset({"truncated", "oversize", "length"})
