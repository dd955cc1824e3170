"""A polite HTTP client for imageboards: per-host rate limits, retries, redaction, verified downloads.

- Every request to a host waits for that host's slot (a reservation clock shared by all threads),
  so a thread pool never exceeds the per-host rate.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff; a
  Retry-After header wins over the backoff and also holds back every other request to that host.
- Credentials go only with API calls (HTTP Basic or secret query parameters), never with file
  downloads, and never appear in an error message, a cached page or a stored URL: `public_url`
  strips them, `redact` masks them in every form a site may echo them (config/credentials.py),
  and API answers are scrubbed of the key before anyone reads them.
- Only http and https are fetched. Every answer has a total deadline (a body dribbled out slowly
  cannot hold a download forever) and a size cap: a file stops at the size the site declared
  (plus a margin) and at max_file_mb, an API page at MAX_PAGE_BYTES.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from lorakiln.config.credentials import SECRET_PARAMS, redact_forms, secret_forms
from lorakiln.core.atomic import write_json
from lorakiln.core.errors import ItemError, KilnError
from lorakiln.core.hashing import text_hash
from lorakiln.sources.answers import (
    Budget,
    Downloaded,
    Fail,
    Retry,
    file_cap,
    json_body,
    page_cap,
    save_image,
    site_message,
)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
SCHEMES = ("http", "https")
# the identifiers among the credential parameters: masked in messages, but not scrubbed from pages
_NOT_KEYS = frozenset({"user_id", "login"})


class FetchError(KilnError):
    """An API request failed for good; the message names the (public) URL and the reason."""


# -- secrets -------------------------------------------------------------------------------
def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of these secrets masked (see config.credentials.secret_forms)."""
    return redact_forms(text, secret_forms(secrets))


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


# -- the client -------------------------------------------------------------------------------
@dataclass
class HttpClient:
    user_agent: str
    rate: float
    api_host: str
    basic_auth: tuple[str, str] | None = None
    secret_params: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0  # the longest wait for any one read
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    deadline: float = 600.0  # the longest an answer's body may take to arrive, in all
    max_file_mb: float | None = None

    def __post_init__(self) -> None:
        self.limits = HostLimits(self.rate)
        self._client = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                    headers={"User-Agent": self.user_agent})
        self._secrets = [v for v in (*(self.basic_auth or ()), *self.secret_params.values()) if v]
        self._forms = secret_forms(self._secrets, self.basic_auth)
        keys = [k for n, k in self.secret_params.items() if n.lower() not in _NOT_KEYS]
        self._key_forms = secret_forms([*keys, *(self.basic_auth or ())[1:]], self.basic_auth)
        self._cancelled = threading.Event()
        self._log_filter = _RedactLogs(self.redact)
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)

    def cancel(self) -> None:
        """Stop every transfer in flight (at its next bytes) and every retry wait: Ctrl-C must not
        wait for a stalled download's deadline."""
        self._cancelled.set()

    def close(self) -> None:
        self._client.close()
        for name in _LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def public(self, url: str, params: Mapping[str, str] | None = None) -> str:
        return public_url(url, params, self._secrets)

    def redact(self, text: str) -> str:
        """Every form of every credential masked: for messages, notes and reasons."""
        return redact_forms(text, self._forms)

    def scrub(self, body: Any) -> Any:
        """An API answer with every string holding a form of the key masked (logins and user ids,
        which may also be tags or uploader names, stay): what the cache and the manifest get."""
        if not self._key_forms:
            return body
        if isinstance(body, str):
            return redact_forms(body, self._key_forms)
        if isinstance(body, list):
            return [self.scrub(v) for v in body]
        if isinstance(body, dict):
            return {self.scrub(k): self.scrub(v) for k, v in body.items()}
        return body

    # -- API pages ----------------------------------------------------------------------------
    def get_json(self, url: str, params: Mapping[str, str]) -> Any:
        where = self.public(url, params)

        def attempt() -> Any:
            resp = self._send(url, params, api=True)
            until = time.monotonic() + self.deadline
            try:
                self._check_status(resp, until)
                return self.scrub(json_body(resp, Budget(until, self.deadline, page_cap(), self._cancelled)))
            finally:
                resp.close()

        try:
            return self._with_retries(attempt)
        except (Retry, Fail) as e:
            raise FetchError(f"{where}: {self.redact(e.problem)}") from None

    # -- files ------------------------------------------------------------------------------
    def download(self, url: str, dest: Path, expect_md5: str | None = None,
                 expect_size: int | None = None) -> Downloaded:
        """Stream `url` into `dest` atomically, checking it is an image of the expected md5 and
        no larger than the site says (`expect_size`, plus a margin) or max_file_mb allows."""
        cap = file_cap(expect_size, self.max_file_mb)

        def attempt() -> Downloaded:
            resp = self._send(url, None, api=False)
            until = time.monotonic() + self.deadline
            try:
                self._check_status(resp, until)
                return save_image(resp, Path(dest), expect_md5, Budget(until, self.deadline, cap, self._cancelled))
            finally:
                resp.close()

        try:
            return self._with_retries(attempt)
        except (Retry, Fail) as e:
            raise ItemError(self.public(url), self.redact(e.problem)) from None

    # -- plumbing -----------------------------------------------------------------------------
    def _with_retries(self, attempt: Callable[[], Any]) -> Any:
        for n in range(self.policy.retries + 1):
            try:
                return attempt()
            except Retry as e:
                wait = self.policy.wait(n, e.retry_after)
                if n == self.policy.retries:
                    raise Fail(f"{e.problem} (gave up after {n + 1} attempts)") from None
                if wait > self.policy.max_wait:
                    raise Fail(f"{e.problem}; the site asks to wait {wait:.0f}s, more than "
                               f"max_retry_wait={self.policy.max_wait:.0f}s") from None
                if e.retry_after is not None:
                    self.limits(e.host or self.api_host).defer(wait)
                if self._cancelled.wait(wait):
                    raise Fail("cancelled") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, url: str, params: Mapping[str, str] | None, api: bool) -> httpx.Response:
        """One GET after the host's rate slot; credentials ride along on API calls only."""
        _check_scheme(url)
        if self._cancelled.is_set():
            raise Fail("cancelled")
        params = dict(params or {})
        auth = None
        if api:
            params.update(self.secret_params)
            auth = httpx.BasicAuth(*self.basic_auth) if self.basic_auth else None
        self.limits(urlsplit(url).hostname or "").acquire()
        try:
            request = self._client.build_request("GET", url, params=params)
            return self._client.send(request, auth=auth, stream=True)
        except httpx.TimeoutException:
            raise Retry("timed out") from None
        except httpx.UnsupportedProtocol as e:  # a redirect to ftp://, file://...
            raise Fail(_refused(_scheme_in(str(e)))) from None
        except httpx.TooManyRedirects:
            raise Fail(f"redirect loop: more than {self._client.max_redirects} redirects") from None
        except httpx.TransportError as e:
            raise Retry(f"connection failed ({type(e).__name__})") from None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise Fail(f"request failed ({type(e).__name__}: {str(e)[:120]})") from None

    def _check_status(self, resp: httpx.Response, until: float) -> None:
        code = resp.status_code
        if code in RETRY_STATUS:
            raise Retry(f"HTTP {code}{site_message(resp, until, self.redact)}",
                        retry_after_seconds(resp.headers.get("Retry-After")), resp.request.url.host)
        if code >= 400:
            raise Fail(f"HTTP {code}{_describe_status(code)}{site_message(resp, until, self.redact)}")


# httpx logs each request's URL, query (and api_key) included; a logger's filters see only the
# records logged to it by name, so httpcore's modules are listed one by one
_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
            "httpcore.http2", "httpcore.proxy", "httpcore.socks")


class _RedactLogs(logging.Filter):
    """Masks credentials in the HTTP libraries' log records, for whoever turns their logging on."""

    def __init__(self, redact: Callable[[str], str]):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self.redact(text)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def _check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise Fail(_refused(scheme))


def _refused(scheme: str) -> str:
    what = f"{scheme}:// URL" if scheme else "URL without http:// or https://"
    return f"refused: {what} (only http and https are fetched)"


def _scheme_in(message: str) -> str:
    found = re.search(r"'([A-Za-z][A-Za-z0-9+.-]*)://", message)
    return found.group(1).lower() if found else ""


def _describe_status(code: int) -> str:
    return {401: " (login or API key missing or wrong)", 403: " (forbidden: blocked, or needs an account)",
            404: " (not found)", 410: " (gone)", 422: " (the site refused the request)"}.get(code, "")


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

    def drop(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def put(self, key: str, url: str, body: Any) -> None:
        write_json(self.path(key), {"url": url, "fetched_at": datetime.now(timezone.utc).isoformat(), "body": body})
