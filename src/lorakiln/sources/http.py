"""A polite HTTP client for imageboards: per-host rate limits, retries, redaction, verified downloads.

- Every request to a host waits for that host's slot (a reservation clock shared by all threads),
  so a thread pool never exceeds the per-host rate.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff; a
  Retry-After header wins over the backoff and also holds back every other request to that host.
- Credentials go only with API calls (HTTP Basic or secret query parameters), never with file
  downloads, and never appear in an error message, a cached page or a stored URL: `public_url`
  strips them, `redact` masks them.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from lorakiln.config.credentials import SECRET_PARAMS
from lorakiln.core.atomic import atomic_open, write_json
from lorakiln.core.errors import ItemError, KilnError
from lorakiln.core.hashing import text_hash

RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_CHUNK = 1 << 16


class FetchError(KilnError):
    """An API request failed for good; the message names the (public) URL and the reason."""


# -- secrets -------------------------------------------------------------------------------
def redact(text: str, secrets: Iterable[str]) -> str:
    for s in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(s, "***")
    return text


def public_url(url: str, params: Mapping[str, str] | None = None, secrets: Iterable[str] = ()) -> str:
    """The URL with its query, minus credential parameters: safe to store, cache or print."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *(params or {}).items()]
    secrets = {s for s in secrets if s}
    kept = [(k, v) for k, v in query if k.lower() not in SECRET_PARAMS and v not in secrets]
    return urlunsplit(parts._replace(query=urlencode(kept), netloc=parts.netloc.rsplit("@", 1)[-1]))


# -- rate limiting ---------------------------------------------------------------------------
class RateLimiter:
    """Evenly spaced slots: `rate` requests per second; each caller reserves the next free slot."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)

    def defer(self, seconds: float) -> None:
        """Hold every later request back by `seconds` from now (the site asked us to wait)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


class HostLimits:
    def __init__(self, rate: float):
        self.rate = rate
        self._by_host: dict[str, RateLimiter] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str) -> RateLimiter:
        with self._lock:
            if host not in self._by_host:
                self._by_host[host] = RateLimiter(self.rate)
            return self._by_host[host]


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff: float = 1.0  # first wait; doubles per attempt
    max_wait: float = 300.0  # a longer Retry-After fails the request instead

    def wait(self, attempt: int, retry_after: float | None) -> float:
        return retry_after if retry_after is not None else self.backoff * (2 ** attempt)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Retry(Exception):
    """A failure worth another attempt; `retry_after` is the site's own wait, if it gave one."""

    def __init__(self, problem: str, retry_after: float | None = None, host: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after
        self.host = host


class _Fail(Exception):
    """A failure that another attempt will not fix."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


# -- the client -------------------------------------------------------------------------------
@dataclass
class Downloaded:
    md5: str
    sha256: str
    size: int


@dataclass
class HttpClient:
    user_agent: str
    rate: float
    api_host: str
    basic_auth: tuple[str, str] | None = None
    secret_params: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self.limits = HostLimits(self.rate)
        self._client = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                    headers={"User-Agent": self.user_agent})
        self._secrets = [v for v in (*(self.basic_auth or ()), *self.secret_params.values()) if v]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def public(self, url: str, params: Mapping[str, str] | None = None) -> str:
        return public_url(url, params, self._secrets)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- API pages ----------------------------------------------------------------------------
    def get_json(self, url: str, params: Mapping[str, str]) -> Any:
        where = self.public(url, params)

        def attempt() -> Any:
            resp = self._send(url, params, api=True)
            try:
                self._check_status(resp)
                return _json_body(resp)
            finally:
                resp.close()

        try:
            return self._with_retries(attempt)
        except (_Retry, _Fail) as e:
            raise FetchError(f"{where}: {self.redact(e.problem)}") from None

    # -- files ------------------------------------------------------------------------------
    def download(self, url: str, dest: Path, expect_md5: str | None = None) -> Downloaded:
        """Stream `url` into `dest` atomically, checking it is an image of the expected md5."""

        def attempt() -> Downloaded:
            resp = self._send(url, None, api=False)
            try:
                self._check_status(resp)
                return _save_image(resp, Path(dest), expect_md5)
            finally:
                resp.close()

        try:
            return self._with_retries(attempt)
        except (_Retry, _Fail) as e:
            raise ItemError(self.public(url), self.redact(e.problem)) from None

    # -- plumbing -----------------------------------------------------------------------------
    def _with_retries(self, attempt: Callable[[], Any]) -> Any:
        for n in range(self.policy.retries + 1):
            try:
                return attempt()
            except _Retry as e:
                wait = self.policy.wait(n, e.retry_after)
                if n == self.policy.retries:
                    raise _Fail(f"{e.problem} (gave up after {n + 1} attempts)") from None
                if wait > self.policy.max_wait:
                    raise _Fail(f"{e.problem}; the site asks to wait {wait:.0f}s, more than "
                                f"max_retry_wait={self.policy.max_wait:.0f}s") from None
                if e.retry_after is not None:
                    self.limits(e.host or self.api_host).defer(wait)
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, url: str, params: Mapping[str, str] | None, api: bool) -> httpx.Response:
        """One GET after the host's rate slot; credentials ride along on API calls only."""
        params = dict(params or {})
        auth = None
        if api:
            params.update(self.secret_params)
            auth = httpx.BasicAuth(*self.basic_auth) if self.basic_auth else None
        self.limits(urlsplit(url).hostname or "").acquire()
        request = self._client.build_request("GET", url, params=params)
        try:
            return self._client.send(request, auth=auth, stream=True)
        except httpx.TimeoutException:
            raise _Retry("timed out") from None
        except httpx.TransportError as e:
            raise _Retry(f"connection failed ({type(e).__name__})") from None

    def _check_status(self, resp: httpx.Response) -> None:
        code = resp.status_code
        if code in RETRY_STATUS:
            raise _Retry(f"HTTP {code}{_site_message(resp)}",
                         retry_after_seconds(resp.headers.get("Retry-After")), resp.request.url.host)
        if code >= 400:
            raise _Fail(f"HTTP {code}{_describe_status(code)}{_site_message(resp)}")


def _describe_status(code: int) -> str:
    return {401: " (login or API key missing or wrong)", 403: " (forbidden: blocked, or needs an account)",
            404: " (not found)", 410: " (gone)", 422: " (the site refused the request)"}.get(code, "")


def _site_message(resp: httpx.Response) -> str:
    """The site's own short error message, if its body says one."""
    try:
        resp.read()
        body = resp.json()
    except Exception:
        return ""
    if isinstance(body, dict):
        msg = body.get("message") or body.get("reason") or body.get("error")
        if isinstance(msg, str) and msg:
            return f": {msg[:200]}"
    return ""


def _json_body(resp: httpx.Response) -> Any:
    try:
        data = resp.read()
    except httpx.TransportError as e:
        raise _Retry(f"connection dropped while reading ({type(e).__name__})") from None
    if not data.strip():
        return None
    if _looks_html(resp, data):
        raise _Fail(f"answered an HTML page instead of JSON (HTTP {resp.status_code}{_title(data)}): "
                    "a login wall, a Cloudflare check or a maintenance page?")
    try:
        return json.loads(data)
    except ValueError:
        raise _Fail(f"answer is not valid JSON (HTTP {resp.status_code}, {len(data)} bytes)") from None


def _looks_html(resp: httpx.Response, head: bytes) -> bool:
    ctype = resp.headers.get("content-type", "").lower()
    start = head[:200].lstrip().lower()
    return "html" in ctype or start.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


def _title(data: bytes) -> str:
    text = data[:4000].decode("utf-8", "replace")
    lo = text.lower()
    i, j = lo.find("<title>"), lo.find("</title>")
    return f", page title {text[i + 7:j].strip()[:80]!r}" if 0 <= i < j else ""


def _save_image(resp: httpx.Response, dest: Path, expect_md5: str | None) -> Downloaded:
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    expected = int(resp.headers.get("content-length") or 0) or None
    chunks = resp.iter_bytes(_CHUNK)
    try:
        first = next(chunks, b"")
        ctype = resp.headers.get("content-type") or "no content type"
        if _looks_html(resp, first):
            raise _Fail(f"HTML page instead of an image (HTTP {resp.status_code}, {ctype}{_title(first)})")
        if ctype.lower().startswith(("application/json", "text/")):
            raise _Fail(f"not an image (HTTP {resp.status_code}, {ctype})")
        with atomic_open(dest, "wb") as fh:
            for chunk in _chain(first, chunks):
                fh.write(chunk)
                md5.update(chunk)
                sha.update(chunk)
                size += len(chunk)
            if expected is not None and resp.num_bytes_downloaded < expected:  # raw bytes, before decoding
                raise _Retry(f"truncated download: {resp.num_bytes_downloaded} of {expected} bytes")
            if size == 0:
                raise _Fail("empty file")
            if expect_md5 and md5.hexdigest() != expect_md5.lower():
                raise _Fail(f"md5 mismatch: the site says {expect_md5.lower()}, got {md5.hexdigest()}")
    except (httpx.TimeoutException, httpx.TransportError) as e:
        got = f"{size} of {expected} bytes" if expected else f"{size} bytes"
        raise _Retry(f"truncated download: connection closed after {got} ({type(e).__name__})") from None
    return Downloaded(md5.hexdigest(), sha.hexdigest(), size)


def _chain(first: bytes, rest):
    if first:
        yield first
    yield from rest


# -- the page cache ---------------------------------------------------------------------------
class PageCache:
    """API answers on disk, keyed by the public request (credentials never enter key or file)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def key(self, url: str, authed: bool) -> str:
        return text_hash(json.dumps([url, authed]), 32)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> tuple[bool, Any]:
        p = self.path(key)
        if not p.exists():
            return False, None
        try:
            return True, json.loads(p.read_text(encoding="utf-8"))["body"]
        except (ValueError, KeyError, OSError):
            return False, None  # a damaged entry is simply fetched again

    def put(self, key: str, url: str, body: Any) -> None:
        write_json(self.path(key), {"url": url, "fetched_at": datetime.now(timezone.utc).isoformat(), "body": body})
