"""Pure pieces of `kiln import`: kohya `N_name` folders, sidecar captions, local ids.

The service walks the folder and copies files; everything here works on names and text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_KOHYA = re.compile(r"^(\d+)_(.+)$")


@dataclass(frozen=True)
class KohyaFolder:
    """A training folder named `<repeats>_<name>`, e.g. `10_kafka` or `3_kafka summer`."""

    folder: str
    repeats: int
    name: str


def parse_kohya_folder(name: str) -> KohyaFolder | None:
    m = _KOHYA.match(name)
    if not m or not m.group(2).strip():
        return None
    return KohyaFolder(name, int(m.group(1)), m.group(2).strip())


def kohya_folder_of(parts: Iterable[str]) -> KohyaFolder | None:
    """The innermost `N_name` folder among a file's parent folders (outermost first)."""
    found = None
    for part in parts:
        found = parse_kohya_folder(part) or found
    return found


def subset_names(folders: Iterable[KohyaFolder]) -> dict[str, str]:
    """Folder name -> subset: `name`, or the whole folder name when one name has several repeat counts.

    Seed 000 keeps `9_kierose` and `5_kierose` side by side; merging them would lose the split.
    """
    folders = list({f.folder: f for f in folders}.values())
    repeats_by_name: dict[str, set[int]] = {}
    for f in folders:
        repeats_by_name.setdefault(f.name, set()).add(f.repeats)
    return {f.folder: f.name if len(repeats_by_name[f.name]) == 1 else f.folder for f in folders}


def parse_caption(text: str) -> list[str]:
    """Comma- or line-separated tags in caption order, stripped, without empties or repeats."""
    seen: dict[str, None] = {}
    for part in re.split(r"[,\n]", text.lstrip("\ufeff")):
        tag = part.strip()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def local_id(sha256: str) -> str:
    return f"local-{sha256[:16]}"


def image_name(sha256: str, suffix: str) -> str:
    """The file name inside images/: content-addressed, so re-imports land on the same file."""
    ext = suffix.lower()
    return f"{local_id(sha256)}{'.jpg' if ext in ('.jpeg', '.jfif') else ext}"
