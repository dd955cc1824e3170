"""kiln crop: portrait, upper-body and cowboy-shot close-ups of single-person pictures, each a new
record derived from its parent (the original is never touched).

For each kept picture that is not itself a crop and was not planned before: the person detector
finds the people; a picture with exactly one gets the head (and half-body) detector, then
`vision.crops.plan_crops` places each framing and `vision.crop_tags.crop_tags` gives its caption.
A crop is written to `images/crops/` and recorded with `parent` = its picture's id, in the
`[crop] subset` (closeups), with its box and the tags the cut removed in `extra.crop`. The
parent's `extra.crops` keeps what was decided (ids made, reasons skipped), so a rerun only
looks at new pictures; pictures with several people are skipped with the count as the reason
(splitting them comes with the identity check of the crops). `--undo` drops every crop record
("crop: undone"); running `kiln crop` again restores them without detecting anew (`--force`
decides every picture again).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

from lorakiln.config.crop import CropConfig
from lorakiln.core.atomic import write_bytes
from lorakiln.core.errors import ItemError
from lorakiln.core.manifest import ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.decode import load_rgb
from lorakiln.services.project import Project
from lorakiln.vision.crop_tags import crop_tags
from lorakiln.vision.crops import CropPlan, CropRules, plan_crops

CROP_KEY = "crop"  # extra of a crop record
PLANNED_KEY = "crops"  # extra of a parent: what kiln crop decided
UNDONE = "crop: undone"
LOOK_CATEGORIES = ("general", "caption")  # tag lists about what the picture shows (not character, artist...)


@dataclass
class CropReport:
    considered: int = 0
    made: list[tuple[str, str]] = field(default_factory=list)  # (crop id, framing)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (parent id, framing, reason)
    not_single: list[tuple[str, int]] = field(default_factory=list)  # (parent id, persons found)
    errors: list[tuple[str, str]] = field(default_factory=list)
    undone: int = 0
    restored: int = 0


def crop_id(parent_id: str, framing: str) -> str:
    return f"{parent_id}~{framing}"


def _detectors(cfg: CropConfig):
    from lorakiln.vision.detectors import load_detector

    person = load_detector("person", local_dir=cfg.person_local)
    head = load_detector("head", local_dir=cfg.head_local) if "portrait" in cfg.framings else None
    half = (load_detector("halfbody", local_dir=cfg.halfbody_local)
            if cfg.use_halfbody and "upper_body" in cfg.framings else None)
    return person, head, half


def _inside(box, person) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return person[0] <= cx <= person[2] and person[1] <= cy <= person[3]


def _best_in(dets, person):
    found = [d for d in dets if _inside(d.box, person)]
    return max(found, key=lambda d: d.score).box if found else None


def _plans(img, cfg: CropConfig, detectors) -> tuple[int, list[CropPlan]]:
    """(persons found, the framings' plans: empty unless exactly one person)."""
    person_det, head_det, half_det = detectors
    persons = person_det.detect([img])[0]
    if len(persons) != 1:
        return len(persons), []
    person = persons[0].box
    head = _best_in(head_det.detect([img])[0], person) if head_det else None
    half = _best_in(half_det.detect([img])[0], person) if half_det else None
    rules = CropRules(pad=cfg.pad, max_aspect=cfg.max_aspect, min_side=cfg.min_side, max_cover=cfg.max_cover)
    return 1, plan_crops(img.size, person, head, half, tuple(cfg.framings), rules)


def _crop_record(project: Project, parent: ImageRecord, img, plan: CropPlan, cfg: CropConfig) -> ImageRecord:
    piece = img.crop(plan.box)
    buf = io.BytesIO()
    piece.save(buf, "PNG")
    data = buf.getvalue()
    stem = parent.file.rsplit("/", 1)[-1].rsplit(".", 1)[0] if parent.file else parent.id
    dest = project.images_dir / "crops" / f"{stem}-{plan.framing}.png"
    write_bytes(dest, data)
    tags, dropped = {}, []
    for category, values in parent.tags.items():  # booru general tags and imported captions
        if category in LOOK_CATEGORIES:
            values, gone = crop_tags(list(values), plan.framing)
            dropped += [t for t in gone if t not in dropped]
        tags[category] = list(values)
    caption = crop_tags(list(parent.caption), plan.framing)[0] if parent.caption else None
    return ImageRecord(
        id=crop_id(parent.id, plan.framing), source=parent.source, post_id=parent.post_id, post_url=parent.post_url,
        file=project.rel(dest), md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(),
        width=piece.width, height=piece.height, format="png", rating=parent.rating, score=parent.score,
        created_at=parent.created_at, tags=tags, subset=cfg.subset, parent=parent.id, caption=caption,
        extra={CROP_KEY: {"framing": plan.framing, "box": list(plan.box), "parent_size": list(img.size),
                          "dropped_tags": dropped}})


def _one(project: Project, m, parent: ImageRecord, cfg: CropConfig, detectors, report: CropReport,
         dry_run: bool) -> None:
    img = load_rgb(project.abs(parent.file))
    n, plans = _plans(img, cfg, detectors)
    decided: dict[str, str] = {}
    if n != 1:
        report.not_single.append((parent.id, n))
        decided = {f: f"{n} persons found (close-ups are made of single-person pictures)" for f in cfg.framings}
    for plan in plans:
        if plan.box is None:
            report.skipped.append((parent.id, plan.framing, plan.reason))
            decided[plan.framing] = plan.reason
            continue
        report.made.append((crop_id(parent.id, plan.framing), plan.framing))
        decided[plan.framing] = crop_id(parent.id, plan.framing)
        if not dry_run:
            m.add(_crop_record(project, parent, img, plan, cfg))
    if not dry_run:
        parent.extra = {**parent.extra, PLANNED_KEY: decided}


def run_crop(project: Project, cfg: CropConfig, progress: Progress, *, dry_run: bool = False,
             force: bool = False) -> CropReport:
    """Crop what was not cropped yet (`force`: decide every kept picture again)."""
    m = project.manifest()
    report = CropReport()
    undone = [r for r in m if r.extra.get(CROP_KEY) and r.status == Status.dropped and r.reason == UNDONE]
    if undone and not dry_run:  # crops undone earlier come back
        for rec in undone:
            rec.restore()
        report.restored = len(undone)
        m.save()
    parents = [r for r in m.kept() if r.parent is None and not r.extra.get(CROP_KEY)
               and (force or PLANNED_KEY not in r.extra)]
    report.considered = len(parents)
    if not parents:
        return report
    detectors = _detectors(cfg)
    with ManifestSaver(m, enabled=not dry_run) as saver, progress.task("crop", total=len(parents)) as task:
        for parent in parents:
            try:
                _one(project, m, parent, cfg, detectors, report, dry_run)
            except (ItemError, OSError) as e:  # one unreadable picture never stops the batch
                report.errors.append((parent.id, str(e)))
                if not dry_run:  # recorded as the other stages record it
                    parent.fail(f"unreadable: {e}")
            task.advance()
            saver.tick()
    return report


def undo_crops(project: Project) -> CropReport:
    """Drop every kept crop record; `kiln crop` brings them back (their parents keep their plans)."""
    m = project.manifest()
    report = CropReport()
    for rec in m:
        if rec.extra.get(CROP_KEY) and rec.kept:
            rec.drop(UNDONE)
            report.undone += 1
    m.save()
    return report
