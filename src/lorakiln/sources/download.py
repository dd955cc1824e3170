"""One post's file: download it verified, or adopt a copy a killed run already finished.

Every file under images/ is written atomically and only after its md5 matched (or it decoded,
when the site gives no md5), so a file that exists is a finished one; a rerun adopts it
instead of downloading again. The outcome is a plain value; the caller records it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lorakiln.core.atomic import atomic_open
from lorakiln.core.errors import ItemError
from lorakiln.core.hashing import file_digests
from lorakiln.dataset.decode import load_rgb, probe
from lorakiln.sources.base import Post
from lorakiln.sources.http import HttpClient

_SAVE_AS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str | None = None
    file: Path | None = None
    original: Path | None = None
    md5: str | None = None  # of the file as the site serves it
    sha256: str | None = None  # of `file` as stored
    width: int | None = None
    height: int | None = None
    format: str | None = None
    downloaded: bool = False

    @classmethod
    def fail(cls, reason: str) -> "Outcome":
        return cls(ok=False, reason=reason)


@dataclass(frozen=True)
class Target:
    """Where a post's files go: images/<site>-<id>.<ext> and images/originals/ for kept originals."""

    file: Path
    original: Path
    max_short_side: int | None = None
    keep_original: bool = False

    @classmethod
    def for_post(cls, post: Post, images: Path, max_short_side: int | None, keep_original: bool) -> "Target":
        name = f"{post.site}-{post.id}.{(post.ext or 'jpg').lower()}"
        return cls(images / name, images / "originals" / name, max_short_side, keep_original)


def fetch_post(client: HttpClient, post: Post, target: Target, force: bool = False) -> Outcome:
    """Download (or adopt), verify, optionally downscale. Item problems come back as a failed Outcome."""
    if not post.file_url:
        why = "deleted post" if post.deleted else "hidden from this account, or deleted"
        return Outcome.fail(f"no file URL: {why}")
    try:
        return _fetch(client, post, target, force)
    except ItemError as e:
        return Outcome.fail(e.problem)
    except OSError as e:
        return Outcome.fail(f"cannot write the file: {e.strerror or type(e).__name__}")
    except Exception as e:  # one bad item never stops the batch; the reason is recorded
        return Outcome.fail(f"unexpected error: {type(e).__name__}: {client.redact(str(e))[:200]}")


def _fetch(client: HttpClient, post: Post, target: Target, force: bool) -> Outcome:
    source, downloaded = None if force else _have_original(post, target), False
    if source is None and not force and _have_resized(target):
        return _done(post, target, target.file, target.original if target.original.exists() else None, False)
    if source is None:
        client.download(post.file_url, target.file, post.md5, post.file_size)
        source, downloaded = target.file, True
    _check_image(source, verify_pixels=post.md5 is None)
    info = probe(source)
    if target.max_short_side and min(info.width, info.height) > target.max_short_side:
        if target.keep_original and source != target.original:
            target.original.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target.original)
            source = target.original
        downscale(source, target.file, target.max_short_side)
    elif source != target.file:
        os.replace(source, target.file)
    original = source if source == target.original else None
    return _done(post, target, target.file, original, downloaded)


def _have_original(post: Post, target: Target) -> Path | None:
    """A finished original from an earlier (perhaps killed) run, checked against the site's md5."""
    if not post.md5:
        return None
    for p in (target.file, target.original):
        if p.exists() and file_digests(p)[0] == post.md5.lower():
            return p
    return None


def _have_resized(target: Target) -> bool:
    if not (target.max_short_side and target.file.exists()):
        return False
    try:
        info = probe(target.file)
    except ItemError:
        return False
    return min(info.width, info.height) <= target.max_short_side


def _check_image(path: Path, verify_pixels: bool) -> None:
    """An image that does not decode is removed, so no later run mistakes it for a finished one."""
    try:
        load_rgb(path) if verify_pixels else probe(path)
    except ItemError as e:
        path.unlink(missing_ok=True)
        raise ItemError(str(path.name), e.problem) from None


def _done(post: Post, target: Target, file: Path, original: Path | None, downloaded: bool) -> Outcome:
    info = probe(file)
    md5, sha = file_digests(file)
    if original is not None:
        md5 = file_digests(original)[0]
    return Outcome(ok=True, file=file, original=original, md5=post.md5 or md5, sha256=sha,
                   width=info.width, height=info.height, format=info.format, downloaded=downloaded)


def downscale(src: Path, dest: Path, max_short_side: int) -> None:
    """Resize so the short side is `max_short_side` (Lanczos), saved atomically in dest's format."""
    im = load_rgb(src)
    scale = max_short_side / min(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.resize(size, Image.Resampling.LANCZOS)
    fmt = _SAVE_AS.get(dest.suffix.lower().lstrip("."), "PNG")
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_open(dest, "wb") as fh:
        im.save(fh, format=fmt, **options)
