"""kiln import: bring a folder the user already has into the project, never touching it."""

from __future__ import annotations

import os
import shutil
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lorakiln.captions.sidecar_text import read_image_caption
from lorakiln.config.importing import ImportConfig
from lorakiln.core.atomic import atomic_open, clean_partials
from lorakiln.core.errors import ItemError, KilnError
from lorakiln.core.hashing import file_digests
from lorakiln.core.manifest import Manifest, ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.decode import load_rgb, probe
from lorakiln.dataset.folders import os_problem, visible_name
from lorakiln.dataset.importer import (
    KohyaFolder,
    image_name,
    kohya_folder_of,
    local_id,
    parse_caption,
    subset_names,
)
from lorakiln.services.dedupe import map_threads
from lorakiln.services.project import Project

CAPTION_KEY = "caption"  # record.tags category for imported sidecar captions


@dataclass(frozen=True)
class Found:
    """One image file in the folder, with where it goes."""

    path: Path
    subset: str
    repeats: int | None
    kohya: str | None  # the N_name folder it came from
    origin: str = ""  # the full path as a printable string: what the manifest keeps and errors name


@dataclass
class ImportReport:
    """What became of each image found: every one is counted once, in one of `outcomes()`."""

    found: int = 0
    imported: int = 0  # new records, `imported_bad` of them recorded with a problem (not trained on)
    imported_bad: int = 0
    refreshed: int = 0  # records read again whose content, caption or problem changed
    already: int = 0  # imported before and unchanged (a rerun, or --force finding nothing new)
    already_bad: int = 0  # of those, recorded with a problem (listed when they were imported)
    same_content: int = 0  # the same picture twice in this folder: the first one counts
    unreadable: int = 0  # not importable at all (no content to record: a broken link, a pipe)
    other_files: int = 0
    unread_folders: int = 0  # subfolders that could not be listed (in `errors`, not images found)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # e.g. a caption read as Shift-JIS
    subsets: Counter = field(default_factory=Counter)  # usable images imported or refreshed, by subset

    def outcomes(self) -> list[tuple[str, int]]:
        """(what happened, how many images) in print order; the counts sum to `found`."""
        return [("imported", self.imported - self.imported_bad),
                ("imported with a problem (recorded, not trained on)", self.imported_bad),
                ("refreshed", self.refreshed), ("already imported", self.already),
                ("same content twice", self.same_content), ("not importable", self.unreadable)]


def import_folder(project: Project, folder: Path, cfg: ImportConfig, progress: Progress, *,
                  subset: str | None = None, force: bool = False) -> ImportReport:
    folder = Path(folder)
    if not folder.is_dir():
        raise KilnError(f"{folder}: not a folder")
    report = ImportReport()
    found = scan(folder, cfg, subset, report, skip=_project_dirs(project))
    report.found = len(found)
    clean_partials(project.images_dir)
    m = project.manifest()
    known = _known_paths(m)
    todo = [f for f in found if force or not _unchanged(known.get(f.origin), f.path)]
    rereading = set(todo)
    skipped = [known[f.origin] for f in found if f not in rereading]
    report.already = len(skipped)
    report.already_bad = sum(r.status == Status.error for r in skipped)
    seen: set[str] = set()
    if not todo:
        return report
    with ManifestSaver(m) as saver, progress.task("importing", total=len(todo)) as task:
        for f, res in map_threads(lambda f: _read(f, cfg), todo, cfg.workers):
            _take(project, m, f, res, cfg, force, seen, report)
            task.advance(1)
            saver.tick()
    return report


def scan(folder: Path, cfg: ImportConfig, subset: str | None, report: ImportReport,
         skip: set[Path] = frozenset()) -> list[Found]:
    """Image files under `folder` (sorted), each with its subset and kohya repeat count."""
    images: list[tuple[Path, KohyaFolder | None]] = []
    captions = set(cfg.caption_extensions)

    def unreadable(e: OSError) -> None:  # a subfolder that cannot be listed is reported, not skipped silently
        report.errors.append((visible_name(os.path.abspath(e.filename or folder)), os_problem(e)))
        report.unread_folders += 1

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in skip)
        rel = [visible_name(part) for part in Path(root).relative_to(folder).parts]
        kohya = kohya_folder_of((visible_name(folder.resolve().name), *rel)) if cfg.kohya_folders else None
        for name in sorted(files):
            ext = Path(name).suffix.lower()
            if name.startswith("."):
                continue
            if ext in cfg.image_extensions:
                images.append((Path(root) / name, kohya))
            elif ext not in captions:
                report.other_files += 1
    names = subset_names(k for _, k in images if k is not None)
    return [Found(p, subset or (names[k.folder] if k else cfg.default_subset), k.repeats if k else None,
                  k.folder if k else None, origin_of(p)) for p, k in images]


def origin_of(path: Path) -> str:
    """The absolute path, links resolved, as a printable string (a broken link or a loop as it is)."""
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a symbolic link loop: Python 3.11 raises RuntimeError
        resolved = os.path.abspath(path)
    return visible_name(str(resolved))


@dataclass
class _Read:
    md5: str
    sha256: str
    size: int
    mtime_ns: int
    width: int | None = None
    height: int | None = None
    format: str | None = None
    problem: str | None = None
    caption: list[str] | None = None
    caption_encoding: str | None = None  # when not UTF-8
    caption_problem: str | None = None  # the caption file exists but cannot be read as text
    caption_note: str | None = None


def _read(f: Found, cfg: ImportConfig) -> _Read:
    """Hash, probe and (with verify) fully decode one file; the heavy part, run in threads."""
    try:
        st = os.stat(f.path)
        if not stat.S_ISREG(st.st_mode):  # a named pipe would block the hashing forever
            raise ItemError(f.origin, "not a regular file (a pipe, socket or device)")
        md5, sha = file_digests(f.path)
    except OSError as e:
        raise ItemError(f.origin, os_problem(e)) from None
    out = _Read(md5, sha, st.st_size, st.st_mtime_ns)
    _read_caption(f.path, cfg.caption_extensions, out)
    try:
        info = probe(f.path)
        out.width, out.height, out.format = info.width, info.height, info.format
        if cfg.verify:
            load_rgb(f.path)
    except ItemError as e:
        out.problem = e.problem
    return out


def _read_caption(image: Path, extensions: list[str], out: _Read) -> None:
    """Tags of the first sidecar found: `name.txt`, then `name.png.txt`, per extension in order."""
    try:
        side = read_image_caption(image, extensions, full_name=True)
    except ItemError as e:
        out.caption_problem = f"caption file not read: {visible_name(Path(e.item).name)}: {e.problem}"
        return
    if side is not None:
        out.caption = parse_caption(side.text)
        out.caption_encoding = side.encoding if side.encoding != "utf-8" else None
        out.caption_note = side.note and f"{visible_name(side.path.name)}: {side.note}"


def _take(project: Project, m: Manifest, f: Found, res: _Read | ItemError, cfg: ImportConfig,
          force: bool, seen: set[str], report: ImportReport) -> None:
    if isinstance(res, ItemError):  # could not even read the file: no content, no id, no record
        report.errors.append((f.origin, res.problem))
        report.unreadable += 1
        return
    rid = local_id(res.sha256)
    if rid in seen:
        report.same_content += 1
        return
    seen.add(rid)
    old = m.get(rid)
    if old is not None and not force and "caption_problem" not in old.extra:
        report.already += 1
        report.already_bad += old.status == Status.error
        return
    rec = _record(rid, f, res)
    if res.caption_note:
        report.notes.append((f.origin, res.caption_note))
    if res.problem is None:
        dest = project.images_dir / image_name(res.sha256, f.path.suffix)
        _place(f.path, dest, res.size, cfg.mode)
        rec.file = project.rel(dest)
    problem = res.problem or res.caption_problem
    if problem:
        rec.fail(problem)
    if old is None:
        m.add(rec)
        report.imported += 1
        report.imported_bad += bool(problem)
    else:
        before = _compared(old)
        m.add(_refresh(old, rec))
        changed = _compared(old) != before
        if not changed:  # a caption problem read again and found the same is no news
            report.already += 1
            report.already_bad += bool(problem)
            return
        report.refreshed += 1
    if problem:
        report.errors.append((f.origin, problem))
    else:
        report.subsets[rec.subset] += 1


def _compared(rec: ImageRecord) -> dict:
    """A record as a rerun compares it: everything but the file's time (a touch changes nothing)."""
    d = rec.model_dump(mode="json")
    d["extra"] = {k: v for k, v in d.get("extra", {}).items() if k != "mtime_ns"}
    return d


def _record(rid: str, f: Found, res: _Read) -> ImageRecord:
    extra = {"imported_from": f.origin, "bytes": res.size, "mtime_ns": res.mtime_ns}
    if f.repeats is not None:
        extra.update(repeats=f.repeats, kohya_folder=f.kohya)
    if res.caption_encoding:
        extra["caption_encoding"] = res.caption_encoding
    if res.caption_problem:  # read again on the next import, so a fixed caption file is picked up
        extra["caption_problem"] = res.caption_problem
    return ImageRecord(
        id=rid, source="local", md5=res.md5, sha256=res.sha256, width=res.width, height=res.height,
        format=res.format, subset=f.subset, tags={CAPTION_KEY: res.caption} if res.caption else {}, extra=extra,
    )


_IMPORT_FIELDS = ("file", "md5", "sha256", "width", "height", "format", "subset")
_PER_IMPORT_EXTRA = ("repeats", "kohya_folder", "caption_encoding", "caption_problem")


def _refresh(old: ImageRecord, new: ImageRecord) -> ImageRecord:
    """--force: import fields from the file again; what later stages decided stays."""
    for name in _IMPORT_FIELDS:
        setattr(old, name, getattr(new, name))
    tags = {k: v for k, v in old.tags.items() if k != CAPTION_KEY}
    old.tags = {**tags, **new.tags}
    old.extra = {**{k: v for k, v in old.extra.items() if k not in _PER_IMPORT_EXTRA}, **new.extra}
    if new.status == Status.error:
        old.fail(new.reason or "unreadable")
    elif old.status == Status.error:
        old.restore()
    return old


def _place(src: Path, dest: Path, size: int, mode: str) -> None:
    """Copy (or link) into images/ atomically; a complete file from an earlier run is reused."""
    if dest.exists() and dest.stat().st_size == size:
        return
    if mode == "link":
        dest.unlink(missing_ok=True)  # a dangling link from an earlier run
        try:
            os.link(src, dest)
        except OSError:  # another file system, or hard links not allowed: a symbolic link
            os.symlink(src.resolve(), dest)
        return
    with open(src, "rb") as fin, atomic_open(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _known_paths(m: Manifest) -> dict[str, ImageRecord]:
    return {r.extra["imported_from"]: r for r in m if r.source == "local" and "imported_from" in r.extra}


def _unchanged(rec: ImageRecord | None, path: Path) -> bool:
    """The same path with the same size and mtime was imported before: skip hashing it again."""
    if rec is None or "caption_problem" in rec.extra:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return rec.extra.get("bytes") == st.st_size and rec.extra.get("mtime_ns") == st.st_mtime_ns


def _project_dirs(project: Project) -> set[Path]:
    return {d.resolve() for d in (project.images_dir, project.dataset_dir, project.runs_dir, project.cache_dir)}
