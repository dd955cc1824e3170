"""`kiln export`: write dataset/<repeats>_<subset>/ (image + caption) for the kept images.

A rerun touches only what changed: an image already linked (or copied with the same size and
time) stays, a caption with the same text stays, and files of images no longer kept (or moved
to another folder when repeats change) are removed. Every write goes to a temporary name and
is renamed into place, so a kill leaves whole files only (leftovers are cleaned on the next run).
Originals in images/ are never written to.

Nothing in dataset/ is lost silently: the export record (.kiln-export.json) lists every file
kiln wrote and each caption's hash. Files kiln never wrote are kept and named; a caption whose
text differs from what kiln wrote (a hand edit) is copied to dataset/.kiln-replaced/ before it
is overwritten or removed, and named. With no record, no file counts as kiln's.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lorakiln.captions.export import (
    ExportItem, ExportSource, is_training_folder, plan_export, repeats_table, stale,
)
from lorakiln.captions.model import tag_key
from lorakiln.config.export import ExportConfig
from lorakiln.core.atomic import clean_partials, partial_path, write_text
from lorakiln.core.errors import ItemError
from lorakiln.core.progress import NullProgress, Progress
from lorakiln.services.caption import Captions
from lorakiln.services.export_record import (
    content_hash, known_files, legacy_known, mark_complete, mark_writing, read_record,
)
from lorakiln.services.project import Project

_LINK_FAILS = {errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


REPLACED = ".kiln-replaced"  # dataset/.kiln-replaced/<folder>/<name>.txt: hand-edited captions kiln replaced


@dataclass
class ExportResult:
    folders: dict[str, int] = field(default_factory=dict)  # folder -> images
    linked: int = 0
    copied: int = 0
    captions_written: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[str] = field(default_factory=list)  # "id: reason"
    missing_trigger: int = 0
    replaced: list[str] = field(default_factory=list)  # hand-edited captions overwritten (copies kept)
    removed_edited: list[str] = field(default_factory=list)  # hand-edited captions of removed images
    foreign: list[str] = field(default_factory=list)  # files kiln did not write, kept
    backup_dir: str = f"dataset/{REPLACED}"

    def notices(self) -> list[str]:
        """What the export did to files it did not write as they are now (nothing is lost silently)."""
        out = []
        if self.replaced:
            out.append(f"overwrote {len(self.replaced)} hand-edited caption(s) (copies in {self.backup_dir}/): "
                       f"{_some(self.replaced)}; edit captions with `kiln caption set` instead")
        if self.removed_edited:
            out.append(f"removed {len(self.removed_edited)} hand-edited caption(s) of images no longer exported "
                       f"(copies in {self.backup_dir}/): {_some(self.removed_edited)}")
        if self.foreign:
            out.append(f"left {len(self.foreign)} file(s) kiln did not write in dataset/: {_some(self.foreign)} "
                       "(training reads them; delete them if they do not belong there)")
        return out


def _some(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def export_dataset(project: Project, progress: Progress | None = None, cli: Mapping[str, Any] | None = None,
                   force: bool = False) -> ExportResult:
    """Bring dataset/ in line with the kept images; `force` rewrites every file."""
    cfg: ExportConfig = project.resolve("export", cli)
    out = project.dataset_dir
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    res = ExportResult()
    plan, ids = _plan(project, cfg, res)
    known = known_files(read_record(out))
    if known is None and any(out.iterdir()):  # exported by an older kiln: files named after records are kiln's
        known = legacy_known(out, ids)
    mark_writing(out, known, plan)  # a kill from here on leaves dataset/ marked as interrupted, not as exported
    progress = progress or NullProgress()
    with progress.task("export", total=len(plan)) as task:
        for item in plan:
            try:
                _write_item(item, out, cfg.link, res, force, known)
                folder = item.image_rel.split("/", 1)[0]
                res.folders[folder] = res.folders.get(folder, 0) + 1
            except ItemError as e:
                res.skipped.append(str(e))
                task.note(str(e))
            task.advance(1)
    res.removed = _remove_stale(out, plan, known, res)
    mark_complete(out, plan, res)
    return res


def _plan(project: Project, cfg: ExportConfig, res: ExportResult) -> tuple[list[ExportItem], set[str]]:
    """What dataset/ should hold now: one item per kept image with a file (the rest in res.skipped),
    and every record id (files named after one are kiln's in a dataset/ exported by older kiln)."""
    caps = Captions(project)
    sources = _sources(project, caps, res)
    repeats = repeats_table(cfg.repeats, cfg.default_repeats, ((r.subset, _int(r.extra.get("repeats")))
                                                                 for r in caps.manifest.kept()))
    plan = plan_export(sources, lambda s: repeats.get(s, cfg.repeats_for(s)), cfg.caption_extension)
    return plan, {r.id for r in caps.manifest}


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def _sources(project: Project, caps: Captions, res: ExportResult) -> list[ExportSource]:
    trigger = {tag_key(t) for t in caps.trigger}
    out = []
    for r in caps.manifest.kept():
        if not r.file:
            res.skipped.append(f"{r.id}: no image file recorded")
            continue
        image = project.abs(r.file)
        if not image.is_file():
            res.skipped.append(f"{r.id}: image file missing: {r.file}")
            continue
        tags = caps.current(r)
        if not trigger & {tag_key(t) for t in tags}:
            res.missing_trigger += 1
        out.append(ExportSource(r.id, r.subset, image, caps.text(tags)))
    return out


def _edited(rel: str, data: bytes, known: dict[str, set[str]] | None) -> bool:
    """Whether dataset/<rel> holds text kiln did not write there (with no record: always)."""
    return known is None or rel not in known or (bool(known[rel]) and content_hash(data) not in known[rel])


def _keep_copy(out: Path, rel: str, data: bytes) -> None:
    dest = out / REPLACED / rel
    n = 1
    while dest.exists():  # an earlier copy is never overwritten
        dest = out / REPLACED / Path(rel).with_name(f"{Path(rel).stem}.{n}{Path(rel).suffix}")
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)


def _write_item(item: ExportItem, out: Path, link: str, res: ExportResult, force: bool = False,
                known: dict[str, set[str]] | None = None) -> None:
    dest = out / item.image_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        how = _place_image(item.image, dest, link, force)
    except OSError as e:
        raise ItemError(item.id, f"cannot write {dest}: {e.strerror or e}") from None
    if how == "linked":
        res.linked += 1
    elif how == "copied":
        res.copied += 1
    cap = out / item.caption_rel
    # bytes, not text: a caption someone re-saved as UTF-16 is rewritten, not a UnicodeDecodeError
    old = cap.read_bytes() if cap.is_file() else None
    if not force and old == item.caption.encode("utf-8"):
        res.unchanged += how == "unchanged"
        return
    if old is not None and old != item.caption.encode("utf-8") and _edited(item.caption_rel, old, known):
        _keep_copy(out, item.caption_rel, old)
        res.replaced.append(item.caption_rel)
    write_text(cap, item.caption)
    res.captions_written += 1


def _same_copy(src: Path, dest: Path) -> bool:
    a, b = src.stat(), dest.stat()
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def _place_image(src: Path, dest: Path, link: str, force: bool = False) -> str:
    """'unchanged', 'linked' or 'copied'; the destination is replaced atomically."""
    exists = dest.is_file() and not force
    if exists and link == "hardlink" and os.path.samefile(src, dest):
        return "unchanged"
    if link == "hardlink":
        tmp = partial_path(dest)
        try:
            os.link(src, tmp)
            os.replace(tmp, dest)
            return "linked"
        except OSError as e:
            tmp.unlink(missing_ok=True)
            if e.errno not in _LINK_FAILS:
                raise
    if exists and not os.path.samefile(src, dest) and _same_copy(src, dest):
        return "unchanged"
    tmp = partial_path(dest)
    try:
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "copied"


def _remove_stale(out: Path, plan: list[ExportItem], known: dict[str, set[str]] | None = None,
                  res: ExportResult | None = None) -> int:
    """Delete the files an earlier export wrote in the N_name folders that the plan no longer has
    (a hand-edited caption is copied first), keep the rest (named in res.foreign), then remove
    empty folders. Returns how many files were removed."""
    res = res if res is not None else ExportResult()
    folders = [d for d in out.iterdir() if d.is_dir() and is_training_folder(d.name)]
    existing = [f"{d.name}/{f.name}" for d in folders for f in d.iterdir() if f.is_file()]
    gone = []
    for rel in stale(existing, plan):
        if known is None or rel not in known:
            res.foreign.append(rel)
            continue
        path = out / rel
        if known[rel]:  # a caption: keep a copy when its text is not what kiln wrote
            data = path.read_bytes()
            if _edited(rel, data, known):
                _keep_copy(out, rel, data)
                res.removed_edited.append(rel)
        path.unlink(missing_ok=True)
        gone.append(rel)
    for d in folders:
        if not any(d.iterdir()):
            d.rmdir()
    return len(gone)
