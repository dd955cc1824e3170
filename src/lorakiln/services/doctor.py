"""`kiln doctor` on a project (the manifest's kept images) or on a folder of image + .txt pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.doctor import DoctorConfig
from lorakiln.config.sections import sections
from lorakiln.core.errors import ItemError
from lorakiln.core.records import ImageRecord
from lorakiln.planning.doctor import Dataset, Finding, Item, norm_tag, run_rules
from lorakiln.services.plan import IMAGE_EXTS, REPEATS_DIR, base_arch
from lorakiln.services.project import Project

DEFAULT_RESOLUTION = {"sd15": 512, "sdxl": 1024}


@dataclass
class DoctorReport:
    findings: list[Finding]
    images: int
    notes: list[str] = field(default_factory=list)
    max_items: int = 10  # ids shown per finding unless --all

    @property
    def warnings(self) -> int:
        return sum(f.severity == "warning" for f in self.findings)


def run_doctor(project: Project, cli: Mapping[str, Any] | None = None, resolution: int | None = None) -> DoctorReport:
    cfg: DoctorConfig = project.resolve("doctor", cli)
    cfg = _dedupe_distance(project, cfg)
    export = project.resolve("export")
    tagger = _tagger(project)
    items = [record_item(r, export.repeats_for(r.subset), tagger) for r in project.manifest().kept()]
    ds = Dataset(items, list(project.info.trigger), _resolution(project, resolution))
    notes = [] if tagger else ["tags read from record tags (the tagging module is not available)"]
    return DoctorReport(run_rules(ds, cfg), len(items), notes, cfg.max_items)


def run_doctor_folder(folder: Path, cfg: DoctorConfig, trigger: list[str], resolution: int | None) -> DoctorReport:
    """A kohya folder (N_name subfolders) or one image folder, captions from the .txt beside each image."""
    items, notes = folder_items(Path(folder))
    ds = Dataset(items, trigger, (resolution, resolution) if resolution else None)
    return DoctorReport(run_rules(ds, cfg), len(items), notes, cfg.max_items)


def record_item(r: ImageRecord, repeats: int, tagger=None) -> Item:
    if r.caption is not None:
        tags, captioned = r.caption, True
    else:
        tags, captioned = (tagger[0](r, tagger[1]) if tagger else r.all_tags()), False
    artists = (r.tags.get("artist") or []) + [t for t, c in _categories(r, tagger).items() if c == "artist"]
    return Item(r.id, frozenset(norm_tag(t) for t in tags), r.subset, repeats, r.width, r.height,
                captioned, tuple(dict.fromkeys(norm_tag(a) for a in artists)), r.phash, r.sha256)


def folder_items(folder: Path) -> tuple[list[Item], list[str]]:
    subdirs = [(d, int(m.group(1)), m.group(2)) for d in sorted(folder.iterdir())
               if d.is_dir() and (m := REPEATS_DIR.match(d.name))]
    groups = subdirs or [(folder, 1, folder.name)]
    items, notes = [], []
    for d, repeats, subset in groups:
        for img in sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS):
            item = _file_item(img, subset, repeats, notes)
            if item is not None:  # an unreadable image is a note, not a training image
                items.append(item)
    return items, notes


def _file_item(img: Path, subset: str, repeats: int, notes: list[str]) -> Item | None:
    from lorakiln.dataset.decode import probe
    from lorakiln.dataset.importer import decode_caption, parse_caption

    cap = img.with_suffix(".txt")
    tags: list[str] = []
    if cap.exists():
        try:  # UTF-8 with or without BOM, legacy cp1252 captions too, as `kiln import` reads them
            tags = parse_caption(decode_caption(cap.read_bytes()))
        except OSError as e:
            notes.append(f"{cap}: caption not readable ({e.strerror or e})")
    try:
        info = probe(img)
    except ItemError as e:
        notes.append(f"{e}: left out of the checks")
        return None
    return Item(f"{subset}/{img.name}", frozenset(norm_tag(t) for t in tags), subset, repeats, info.width,
                info.height, cap.exists())


def _tagger(project: Project):
    """(initial_tags, tag config): how a project image's tags are read when it has no caption yet."""
    from lorakiln.tagging.merge import initial_tags

    return initial_tags, project.resolve("tag")


def _categories(r: ImageRecord, tagger) -> dict[str, str]:
    if not tagger:
        return {}
    from lorakiln.tagging.merge import tag_categories

    return tag_categories(r, tagger[1])


def _resolution(project: Project, override: int | None) -> tuple[int, int] | None:
    if override:
        return override, override
    train = project.resolve("train")
    reso = train.buckets.resolution
    if reso is None:
        arch = base_arch(train.base or project.info.base, project.resolve("plan").family)
        return (DEFAULT_RESOLUTION[arch],) * 2 if arch else None
    return (reso, reso) if isinstance(reso, int) else tuple(reso)


def _dedupe_distance(project: Project, cfg: DoctorConfig) -> DoctorConfig:
    """Default the near-duplicate distance to the project's own dedupe threshold."""
    if cfg.duplicate_distance is not None or "dedupe" not in sections():
        return cfg
    threshold = getattr(project.resolve("dedupe"), "threshold", None)
    if isinstance(threshold, int) and not isinstance(threshold, bool):
        return cfg.model_copy(update={"duplicate_distance": threshold})
    return cfg
