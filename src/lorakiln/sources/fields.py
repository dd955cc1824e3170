"""Reading one field of a post as the site sent it. Sites change, mirrors differ and a hostile
host can send anything: a value of the wrong type or an impossible one raises Malformed naming
the field, the value and what was expected, and the page walk skips that post with the reason.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urljoin


class Malformed(ValueError):
    """A post field no site would send (wrong type or impossible value): the post is skipped."""


MAX_ID = 2**63 - 1
MAX_SIDE = 1_000_000  # pixels
MAX_BYTES = 1 << 48
MAX_SCORE = 2**53
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")
_ODD_IN_TAG = re.compile(r"[\s\x00-\x1f\x7f\ufffd]")


def kind_of(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(name: str, value: Any, expected: str) -> Malformed:
    return Malformed(f"{name} is {show(value)} ({kind_of(value)}), expected {expected}")


def _whole(value: Any) -> int | None:
    """An integer given as a number or as digits; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d{1,20}\s*", value):
        return int(value)
    return None


def post_id(value: Any, name: str = "id") -> int:
    n = _whole(value)
    if n is None or not 0 < n <= MAX_ID:
        raise _bad(name, value, "a positive whole number")
    return n


def as_int(value: Any, name: str = "value", low: int = 0, high: int = MAX_SCORE) -> int:
    """A whole number within [low, high]; missing (null or "") is 0."""
    if value in (None, ""):
        return 0
    n = _whole(value)
    if n is None or not low <= n <= high:
        raise _bad(name, value, f"a whole number from {low} to {high}")
    return n


def side(value: Any, name: str) -> int:
    return as_int(value, name, 0, MAX_SIDE)


def byte_size(value: Any, name: str) -> int | None:
    return as_int(value, name, 0, MAX_BYTES) or None


def score(value: Any, name: str = "score") -> int:
    return as_int(value, name, -MAX_SCORE, MAX_SCORE)


def text(value: Any, name: str, expected: str = "text") -> str | None:
    """Text or nothing (null or "")."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise _bad(name, value, expected)
    return value


def md5_of(value: Any, name: str = "md5") -> str | None:
    v = text(value, name, "32 hexadecimal digits")
    if v is not None and not _MD5.match(v):
        raise _bad(name, value, "32 hexadecimal digits")
    return v.lower() if v else None


def file_ext(value: Any, name: str = "file_ext") -> str | None:
    v = text(value, name, "a file extension such as jpg")
    if v is not None and not _EXT.match(v.lstrip(".")):
        raise _bad(name, value, "a file extension such as jpg")
    return v.lstrip(".").lower() if v else None


def flag(value: Any, name: str) -> bool:
    """A yes/no as sites write it: a boolean, 0/1, or "true"/"false"."""
    if value in (None, ""):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "t", "f"):
        return value.strip().lower() in ("true", "1", "t")
    raise _bad(name, value, "true or false")


def obj(value: Any, name: str) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise _bad(name, value, "an object")
    return value


def rating_value(value: Any, name: str = "rating") -> str | None:
    return text(value, name)


def split_tags(value: Any, name: str = "tags") -> tuple[str, ...]:
    """Tags from space-separated text or a list of tag strings (no spaces or control characters
    inside a tag: they would end up in captions)."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        tags = tuple(value.split())
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        tags = tuple(v for v in value if v)
    else:
        raise _bad(name, value, "space-separated tags or a list of tags")
    odd = next((t for t in tags if _ODD_IN_TAG.search(t)), None)
    if odd is not None:
        raise _bad(name, odd, "tags without spaces or control characters")
    return tags


def iso_time(value: Any, name: str = "created_at") -> str | None:
    """ISO 8601 from an ISO string, a unix timestamp, or Gelbooru's 'Sat Jan 06 12:00:00 -0500 2024'."""
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            raise _bad(name, value, "a date") from None
    if not isinstance(value, str):
        raise _bad(name, value, "a date")
    for fmt in ("%a %b %d %H:%M:%S %z %Y",):
        try:
            return datetime.strptime(value, fmt).isoformat()
        except ValueError:
            pass
    return value[:64]


def ext_of(url: str | None) -> str | None:
    if not url:
        return None
    name = url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else None
    return ext if ext and _EXT.match(ext) else None


def file_url(value: Any, base_url: str, name: str = "file_url") -> str | None:
    """An absolute URL; a site-relative one ("/data/x.jpg", "//host/x.jpg") is resolved on the site.
    The scheme is checked when downloading, so a non-http URL is one failed item with its reason."""
    v = text(value, name, "a URL")
    return urljoin(base_url + "/", v) if v and v.startswith("/") else v
