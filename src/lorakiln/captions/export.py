"""The kohya training view, planned in memory: dataset/<repeats>_<subset>/<id>.<ext> + caption.

`plan_export` says what the folder should contain; `stale` says what in it no longer belongs.
services/export.py does the file work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping

KOHYA_DIR_RE = re.compile(r"^(\d+)_(.+)$")
_UNSAFE_RE = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")


@dataclass(frozen=True)
class ExportSource:
    id: str
    subset: str
    image: Path  # absolute path of the image in images/
    caption: str  # caption text, already formatted


@dataclass(frozen=True)
class ExportItem:
    id: str
    image: Path
    image_rel: str  # relative to dataset/: "10_main/danbooru-1.png"
    caption_rel: str
    caption: str


def folder_name(repeats: int, subset: str) -> str:
    """kohya's folder convention: `<repeats>_<name>`."""
    return f"{repeats}_{subset}"


def safe_name(name: str) -> str:
    return _UNSAFE_RE.sub("_", name).strip(" .") or "_"


def plan_export(
    sources: Iterable[ExportSource], repeats_for: Callable[[str], int], caption_extension: str = ".txt"
) -> list[ExportItem]:
    out = []
    for s in sources:
        folder = safe_name(folder_name(repeats_for(s.subset), s.subset))
        stem = safe_name(s.id)
        out.append(ExportItem(
            id=s.id,
            image=s.image,
            image_rel=str(PurePosixPath(folder, stem + s.image.suffix.lower())),
            caption_rel=str(PurePosixPath(folder, stem + caption_extension)),
            caption=s.caption,
        ))
    return out


def repeats_table(
    configured: Mapping[str, int], default: int, imported: Iterable[tuple[str, int | None]]
) -> dict[str, int]:
    """Repeats per subset: [export].repeats, else the N of the `N_name` folder the subset was
    imported from (when all its images agree), else the default."""
    seen: dict[str, set[int | None]] = {}
    for subset, n in imported:
        seen.setdefault(subset, set()).add(n)
    out = {}
    for subset, ns in seen.items():
        only = next(iter(ns)) if len(ns) == 1 else None
        out[subset] = configured.get(subset) or only or default
    return out


def is_training_folder(name: str) -> bool:
    return bool(KOHYA_DIR_RE.match(name))


def stale(existing: Iterable[str], plan: Iterable[ExportItem]) -> list[str]:
    """Files under the training folders that the plan does not contain (relative paths)."""
    wanted = {p for item in plan for p in (item.image_rel, item.caption_rel)}
    return sorted(p for p in existing if p not in wanted)
