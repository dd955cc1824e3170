"""`kiln doctor` on a project (the manifest's kept images) or on a folder of image + .txt pairs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.doctor import DoctorConfig
from lorakiln.config.sections import sections
from lorakiln.core.errors import ItemError, KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.dataset.folders import entries, image_files
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
    tagger = _tagger(project)
    items = project_items(project, None, tagger)
    repeats, written, notes = _repeats(project, items)
    items = [replace(it, repeats=repeats(it.subset)) for it in items]
    ds = Dataset(items, _trigger(project), _resolution(project, resolution), written,
                 dict(project.resolve("plan").weights), exports_captions=True)
    notes += [] if tagger else ["tags read from record tags (the tagging module is not available)"]
    return DoctorReport(run_rules(ds, cfg), len(items), notes, cfg.max_items)


def _repeats(project: Project, items: list[Item]):
    """(repeats by subset, project.toml's repeats where they differ, notes): the repeats training
    will use once `kiln plan` has run, that is the plan's, or the ones you set by hand and it keeps."""
    from lorakiln.services.plan import plan_project

    export = project.resolve("export")
    subsets = sorted({it.subset for it in items})
    written = {s: export.repeats_for(s) for s in subsets}
    try:
        outcome = plan_project(project, dry_run=True, items=items)
    except KilnError as e:
        return export.repeats_for, None, [f"repeats as project.toml has them (`kiln plan` cannot plan: {e})"]
    change = next(c for c in outcome.changes if c.key == "export.repeats")
    planned = change.old if change.status == "kept" else change.new
    planned = {s: planned.get(s, export.default_repeats) for s in subsets}
    if planned == written:
        return export.repeats_for, None, []
    note = (f"checked with the repeats `kiln plan` gives now ({_fmt(planned)}); project.toml has "
            f"{_fmt(written)} until you run `kiln plan`")
    return (lambda s: planned.get(s, export.default_repeats)), written, [note]


def _fmt(repeats: dict[str, int]) -> str:
    return ", ".join(f"{s} {r}" for s, r in repeats.items())


def project_items(project: Project, repeats_for=None, tagger=None) -> list[Item]:
    """The kept images as the rules see them: caption tags, else booru and tagger tags."""
    tagger = tagger or _tagger(project)
    return [record_item(r, repeats_for(r.subset) if repeats_for else 1, tagger) for r in project.manifest().kept()]


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
                captioned, tuple(dict.fromkeys(norm_tag(a) for a in artists)), r.phash, r.sha256,
                _identity(r))


def _identity(r: ImageRecord) -> tuple[float, float] | None:
    """The last `kiln filter --identity` measure of this picture (extra.identity), if any."""
    got = r.extra.get("identity")
    try:
        return (float(got["difference"]), float(got["threshold"])) if got else None
    except (KeyError, TypeError, ValueError):
        return None


def folder_items(folder: Path) -> tuple[list[Item], list[str]]:
    subdirs = [(d, int(m.group(1)), m.group(2)) for d in entries(folder)
               if d.is_dir() and (m := REPEATS_DIR.match(d.name))]
    groups = subdirs or [(folder, 1, folder.name)]
    items, notes = [], []
    for d, repeats, subset in groups:
        try:
            images = image_files(d, IMAGE_EXTS)
        except ItemError as e:  # a subfolder one may not read is a note, not a traceback
            notes.append(f"{e}: left out of the checks")
            continue
        for img in images:
            item = _file_item(img, subset, repeats, notes)
            if item is not None:  # an unreadable image is a note, not a training image
                items.append(item)
    return items, notes


def _file_item(img: Path, subset: str, repeats: int, notes: list[str]) -> Item | None:
    from lorakiln.captions.sidecar_text import read_image_caption
    from lorakiln.dataset.decode import probe
    from lorakiln.dataset.folders import visible_name
    from lorakiln.dataset.importer import parse_caption

    side = None
    try:  # any encoding `kiln import` reads; a damaged, folder or broken-link caption is a note, as there
        side = read_image_caption(img, [".txt"])
    except ItemError as e:
        notes.append(f"{e}: caption not read")
    try:
        info = probe(img)
    except ItemError as e:
        notes.append(f"{visible_name(e.item)}: {e.problem}: left out of the checks")
        return None
    tags, subset = (parse_caption(side.text) if side else []), visible_name(subset)
    return Item(visible_name(f"{subset}/{img.name}"), frozenset(norm_tag(t) for t in tags), subset, repeats,
                info.width, info.height, side is not None)


def _tagger(project: Project):
    """(first tags, tag config): an image's tags when it has no caption yet, exactly as `kiln export`
    writes them (booru + tagger tags, with the prepend/append tags of its fetch)."""
    from lorakiln.services.caption import TagView

    view = TagView(project)
    return (lambda r, _cfg: view.initial(r)), project.resolve("tag")


def _trigger(project: Project) -> list[str]:
    """The trigger the captions use: [caption].trigger when set (as export checks), else the project's."""
    try:
        words = getattr(project.resolve("caption"), "trigger", None)
    except KilnError:
        words = None
    return list(words or project.info.trigger)


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
