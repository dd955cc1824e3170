"""Reading an answer's body within bounds: a total deadline, a size cap, a check that a file is
an image and has the site's md5, and the two outcomes of a failed attempt (Retry or Fail).

The deadline is checked as bytes arrive, so a body dribbled out slowly stops at `deadline`; a
server that sends nothing at all is stopped by the client's read timeout, so the longest one
answer can take is deadline + timeout.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx

from lorakiln.core.atomic import atomic_open

MAX_PAGE_BYTES = 64 << 20  # an API page is a few hundred KB; more is not a page
_SNIFF = 512  # bytes looked at to tell an image from an HTML page
_MESSAGE_BYTES = 1 << 16  # what is read of an error body for the site's message
_MESSAGE_SECONDS = 10.0  # and for how long at most


class Retry(Exception):
    """A failure worth another attempt; `retry_after` is the site's own wait, if it gave one."""

    def __init__(self, problem: str, retry_after: float | None = None, host: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after
        self.host = host


class Fail(Exception):
    """A failure that another attempt will not fix."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass
class Downloaded:
    md5: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Cap:
    """The most bytes an answer may have, and how to say why when it has more."""

    limit: int
    why: str  # "the site says 2048 bytes" / "max_file_mb=200 (209715200 bytes)"
    declared: bool = False  # the limit is the site's declared size plus a margin
    noun: str = "file"

    def over_length(self, length: int) -> str:
        joint = ", but " if self.declared else ", more than "
        return f"too large: the {self.noun} is {length} bytes (Content-Length){joint}{self.why}"

    def over_stream(self, got: int) -> str:
        if self.declared:
            return f"too large: {self.why}, but more than {self.limit} bytes arrived (stopped)"
        return f"too large: more than {self.why} (stopped after {got} bytes)"


@dataclass(frozen=True)
class Budget:
    until: float  # time.monotonic() deadline
    seconds: float
    cap: Cap
    cancelled: threading.Event | None = None


def file_cap(declared: int | None, max_file_mb: float | None) -> Cap:
    """The site's size plus a margin (a quarter, at least 1 MiB), within max_file_mb."""
    most = None
    if max_file_mb:
        limit = int(max_file_mb * (1 << 20))
        most = Cap(limit, f"max_file_mb={max_file_mb:g} ({limit} bytes)")
    if declared and declared > 0:
        site = Cap(declared + max(declared // 4, 1 << 20), f"the site says {declared} bytes", declared=True)
        if most is None or site.limit < most.limit:
            return site
    return most or Cap(1 << 62, "no limit")


def page_cap() -> Cap:
    return Cap(MAX_PAGE_BYTES, f"{MAX_PAGE_BYTES >> 20} MiB for an API page", noun="answer")


def content_length(resp: httpx.Response) -> int | None:
    try:
        n = int(resp.headers.get("content-length") or 0)
    except ValueError:
        return None
    return n if n > 0 else None


def _too_slow(got: int, expected: int | None, seconds: float) -> str:
    part = f"{got} of {expected} bytes" if expected else f"{got} bytes"
    return f"too slow: {part} arrived in {seconds:g}s (deadline={seconds:g}s)"


def _pieces(resp: httpx.Response, budget: Budget):
    """The body as it arrives, stopped when it outgrows its cap or its deadline passes
    (the deadline is checked as bytes arrive: a silent server is the read timeout's job)."""
    expected, got = content_length(resp), 0
    if expected is not None and expected > budget.cap.limit:
        raise Fail(budget.cap.over_length(expected))
    for piece in resp.iter_bytes():
        got += len(piece)
        if max(got, resp.num_bytes_downloaded) > budget.cap.limit:
            raise Fail(budget.cap.over_stream(got))
        if time.monotonic() > budget.until:
            raise Fail(_too_slow(resp.num_bytes_downloaded, expected, budget.seconds))
        if budget.cancelled is not None and budget.cancelled.is_set():
            raise Fail("cancelled")
        yield piece


def site_message(resp: httpx.Response, until: float, redact: Callable[[str], str]) -> str:
    """The site's own short error message, if its (small, prompt) body says one; redacted before
    it is shortened, so no cut leaves part of a secret unmasked."""
    try:
        soon = min(until, time.monotonic() + _MESSAGE_SECONDS)
        data = b"".join(_pieces(resp, Budget(soon, _MESSAGE_SECONDS, Cap(_MESSAGE_BYTES, "message"))))
        body = json.loads(data)
    except (Fail, httpx.HTTPError, ValueError):
        return ""
    if isinstance(body, dict):
        msg = body.get("message") or body.get("reason") or body.get("error")
        if isinstance(msg, str) and msg:
            return f": {redact(msg)[:300]}"
    return ""


def json_body(resp: httpx.Response, budget: Budget) -> Any:
    try:
        data = b"".join(_pieces(resp, budget))
    except httpx.DecodingError:
        raise Fail("the answer does not decode (its Content-Encoding is damaged)") from None
    except httpx.TransportError as e:
        raise Retry(f"connection dropped while reading ({type(e).__name__})") from None
    if not data.strip():
        return None
    if _looks_html(resp, data):
        raise Fail(f"answered an HTML page instead of JSON (HTTP {resp.status_code}{_title(data)}): "
                   "a login wall, a Cloudflare check or a maintenance page?")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise Fail(f"answer is not valid JSON (HTTP {resp.status_code}, {len(data)} bytes)") from None


def _looks_html(resp: httpx.Response, head: bytes) -> bool:
    ctype = resp.headers.get("content-type", "").lower()
    start = head[:200].lstrip().lower()
    return "html" in ctype or start.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def _title(data: bytes) -> str:
    text = data[:4000].decode("utf-8", "replace")
    lo = text.lower()
    i, j = lo.find("<title>"), lo.find("</title>")
    return f", page title {text[i + 7:j].strip()[:80]!r}" if 0 <= i < j else ""


def save_image(resp: httpx.Response, dest: Path, expect_md5: str | None, budget: Budget) -> Downloaded:
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    expected = content_length(resp)
    try:
        pieces = _pieces(resp, budget)
        first = _head_of(pieces)
        ctype = resp.headers.get("content-type") or "no content type"
        if _looks_html(resp, first):
            raise Fail(f"HTML page instead of an image (HTTP {resp.status_code}, {ctype}{_title(first)})")
        if ctype.lower().startswith(("application/json", "text/")):
            raise Fail(f"not an image (HTTP {resp.status_code}, {ctype})")
        with atomic_open(dest, "wb") as fh:
            for chunk in _chain(first, pieces):
                fh.write(chunk)
                md5.update(chunk)
                sha.update(chunk)
                size += len(chunk)
            if expected is not None and resp.num_bytes_downloaded < expected:  # raw bytes, before decoding
                raise Retry(f"truncated download: {resp.num_bytes_downloaded} of {expected} bytes")
            if size == 0:
                raise Fail("empty file")
            if expect_md5 and md5.hexdigest() != expect_md5.lower():
                raise Fail(f"md5 mismatch: the site says {expect_md5.lower()}, got {md5.hexdigest()}")
    except httpx.DecodingError:
        raise Fail("the file does not decode (its Content-Encoding is damaged)") from None
    except (httpx.TimeoutException, httpx.TransportError) as e:
        got = resp.num_bytes_downloaded
        got = f"{got} of {expected} bytes" if expected else f"{got} bytes"
        raise Retry(f"truncated download: connection closed after {got} ({type(e).__name__})") from None
    return Downloaded(md5.hexdigest(), sha.hexdigest(), size)


def _head_of(pieces) -> bytes:
    """The first bytes of the body (enough to sniff), however thinly it arrives."""
    head = b""
    for piece in pieces:
        head += piece
        if len(head) >= _SNIFF:
            break
    return head


def _chain(first: bytes, rest):
    if first:
        yield first
    yield from rest
