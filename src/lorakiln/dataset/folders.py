"""A user's plain folders as kiln reads them: printable names, OS errors in words, image listings.

Folders come from other machines and tools: names that are not UTF-8, links that point
nowhere or to themselves, subfolders one may not read. Nothing here raises a traceback; a
folder that cannot be listed is an ItemError naming it.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Collection

from lorakiln.core.errors import ItemError


def visible_name(text: str) -> str:
    """A file name or path as a printable string: bytes that are not UTF-8 (which Python keeps as
    lone surrogates) are shown as `\\xff`, so manifests, JSON, metadata and terminals can hold it."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system decoding produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def os_problem(e: OSError) -> str:
    """An OSError in words, without the (possibly unprintable) file name Python appends."""
    known = {errno.ELOOP: "a symbolic link loop", errno.ENOENT: "missing (a broken symbolic link?)",
             errno.EACCES: "not readable (permission denied)", errno.EPERM: "not readable (not permitted)",
             errno.EISDIR: "a folder, not a file", errno.ENAMETOOLONG: "a name too long for the file system"}
    return known.get(e.errno, f"not readable ({e.strerror or type(e).__name__})")


def entries(folder: Path) -> list[Path]:
    """What `folder` holds, sorted; ItemError (a KilnError) naming the folder when it cannot be listed."""
    try:
        return sorted(Path(folder).iterdir())
    except OSError as e:
        raise ItemError(visible_name(str(folder)), f"folder {os_problem(e)}") from None


def image_files(folder: Path, extensions: Collection[str]) -> list[Path]:
    """The image files directly in `folder` (not folders named like images, not broken links)."""
    return [p for p in entries(folder) if p.suffix.lower() in extensions and p.is_file()]
