"""kiln filter: run the filters in their fixed order over the kept images; --undo restores."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Iterator

import numpy as np

from lorakiln.config.filter import FilterConfig
from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import ItemError
from lorakiln.core.manifest import Manifest, ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.decode import load_rgb, probe
from lorakiln.dataset.filters import Facts, Item, build_filters, filter_of_reason, matches_undo, norm_tag
from lorakiln.dataset.filters.base import KEEP_KEY, ColourStats
from lorakiln.dataset.dedupe import groups_of
from lorakiln.dataset.filters.monochrome import THUMB, Monochrome, colour_stats
from lorakiln.services.dedupe import map_threads
from lorakiln.services.project import Project
from lorakiln.tagging.merge import tagger_tags

FRAMES_KEY = "frames"  # record.extra: frame count from the file header
COLOUR_KEY = "colour_stats"  # record.extra: ColourStats fields + the background used


@dataclass
class FilterReport:
    considered: int = 0
    restored: int = 0
    untagged: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    rekept: list[tuple[str, str, str]] = field(default_factory=list)  # (was kept, kept now, why)
    lost: list[tuple[str, list[str]]] = field(default_factory=list)  # (dropped keeper, its copies: none passes)
    notes: list[str] = field(default_factory=list)  # what a filter could not do, or measured (identity)

    def by_filter(self) -> Counter:
        return Counter(reason.split(":", 1)[0] for _, reason in self.dropped)


def run_filter(project: Project, cfg: FilterConfig, progress: Progress, *, tag_cfg: TagConfig | None = None,
               force: bool = False, models=None, dry_run: bool = False) -> FilterReport:
    """Evaluate the kept images (all filter drops too, with --force) and drop what fails.
    `models`: [eval.models] (where the identity filter finds CCIP); a dry run saves nothing."""
    filters = build_filters(cfg)
    tag_cfg = tag_cfg or TagConfig()
    m = project.manifest()
    report = FilterReport(filters=[f.name for f in filters])
    with ManifestSaver(m, enabled=not dry_run) as saver:
        if force:
            report.restored = _restore_all(m)
        report.rekept = _rekeep_duplicates(project, m, cfg, tag_cfg, progress, saver, report)
        items = _gather(project, m.kept(), tag_cfg, progress, saver, report)
        report.considered = len(items)
        if "tags" in report.filters:
            report.untagged = sum(1 for it in items if not it.facts.tags)
        for flt in filters:
            if flt.needs_pixels:
                items = _add_colour(project, items, cfg, progress, saver, report)
            if getattr(flt, "needs_features", False):
                drops = _identity(project, flt, items, cfg, models, progress, report, dry_run)
            else:
                drops = flt.run(items)
            for it in items:
                if it.record.id in drops:
                    it.record.drop(drops[it.record.id])
                    report.dropped.append((it.record.id, drops[it.record.id]))
            items = [it for it in items if it.record.id not in drops and it.record.status != Status.error]
    return report


def _identity(project: Project, flt, items: list[Item], cfg: FilterConfig, models, progress: Progress,
              report: FilterReport, dry_run: bool) -> dict[str, str]:
    from lorakiln.services.identity import identity_drops

    models = models or project.resolve("eval").models  # the CCIP model kiln eval uses, unless [filter] names one
    return identity_drops(project, flt, items, cfg, models, progress, report, write=not dry_run)


@dataclass(frozen=True)
class Verdict:
    reason: str | None  # what a per-image filter would drop it for; None: it stays
    colour: bool


def judge(project: Project, records: list[ImageRecord], cfg: FilterConfig, tag_cfg: TagConfig,
          progress: Progress, saver: ManifestSaver, report) -> dict[str, Verdict]:
    """What the per-image filters would say of each image, dropping nothing (`report.errors`
    gets unreadable files). Dedupe uses it to keep the member of a group that will stay."""
    items = _gather(project, records, tag_cfg, progress, saver, report)
    items = _add_colour(project, items, cfg, progress, saver, report)
    per_image = [f for f in build_filters(cfg) if f.per_image]
    colour = Monochrome.from_config(cfg)
    out = {}
    for it in items:
        reason = next((r for f in per_image if (r := f.run([it]).get(it.record.id))), None)
        out[it.record.id] = Verdict(reason, colour.reject(it) is None)
    return out


def _rekeep_duplicates(project: Project, m: Manifest, cfg: FilterConfig, tag_cfg: TagConfig, progress: Progress,
                       saver: ManifestSaver, report: FilterReport) -> list[tuple[str, str, str]]:
    """Duplicate groups whose kept image a filter drops (now or earlier) keep their best member that
    passes; with none passing, each member is judged by the filters on its own reason."""
    from lorakiln.services.dedupe import regroup, restore

    groups = [g for g in groups_of(list(m)) if g.keep.kept or filter_of_reason(g.keep.reason)]
    if not groups:
        return []
    members = [r for g in groups for r in (g.keep, *(x.record for x in g.dropped))]
    verdicts = judge(project, members, cfg, tag_cfg, progress, saver, report)
    out = []
    for g in groups:
        why = verdicts[g.keep.id].reason if g.keep.kept and g.keep.id in verdicts else g.keep.reason
        if not why:
            continue
        copies = [x.record for x in g.dropped]
        if not any(r.id in verdicts and verdicts[r.id].reason is None for r in copies):
            for r in copies:  # no copy passes: the filters below drop each for its own reason
                restore(r)
            report.lost.append((g.keep.id, [r.id for r in copies]))
            continue
        new = regroup(m, [g.keep, *copies] if g.keep.kept else copies, verdicts)
        if new is not None:
            out.append((g.keep.id, new.id, why))
    return out


def undo(project: Project, pattern: str) -> list[ImageRecord]:
    """Restore images a filter dropped (`mono`, `too small`, ...) and keep them through later runs."""
    m = project.manifest()
    back = []
    for r in m:
        if r.status == Status.dropped and matches_undo(r.reason, pattern):
            name = filter_of_reason(r.reason)
            r.restore()
            r.extra[KEEP_KEY] = sorted({*r.extra.get(KEEP_KEY, []), name})
            back.append(r)
    if back:
        m.save()
    return back


def filter_reasons(m: Manifest) -> Counter:
    """Filter drops by reason label, for telling the user what --undo can match."""
    return Counter(r.reason.split(":", 1)[0] for r in m if r.status == Status.dropped and filter_of_reason(r.reason))


def record_tags(r: ImageRecord, tag_cfg: TagConfig) -> frozenset[str]:
    """Every tag the image has: booru and imported caption tags, and tagger tags above threshold."""
    tags = list(r.all_tags()) + list(tagger_tags(r, tag_cfg))
    return frozenset(norm_tag(t) for t in tags)


def _restore_all(m: Manifest) -> int:
    n = 0
    for r in m:
        if r.status == Status.dropped and filter_of_reason(r.reason):
            r.restore()
            n += 1
        r.extra.pop(KEEP_KEY, None)  # --force forgets earlier --undo choices
    return n


def _gather(project: Project, records: list[ImageRecord], tag_cfg: TagConfig, progress: Progress,
            saver: ManifestSaver, report: FilterReport) -> list[Item]:
    """Size, format and frame count (from the header, cached), and tags, for each kept image."""
    todo = [r for r in records if r.file and (FRAMES_KEY not in r.extra or not r.width or not r.height)]
    with _task(progress, "reading headers", len(todo)) as task:
        for rec, info in map_threads(lambda r: probe(project.abs(r.file)), todo, 1):
            if isinstance(info, ItemError):
                rec.fail(info.problem)
                report.errors.append((rec.id, info.problem))
            else:
                rec.width, rec.height = rec.width or info.width, rec.height or info.height
                rec.format = rec.format or info.format
                rec.extra[FRAMES_KEY] = info.frames
            task.advance(1)
            saver.tick()
    return [Item(r, Facts(r.width, r.height, r.format, r.extra.get(FRAMES_KEY), record_tags(r, tag_cfg)))
            for r in records if r.status != Status.error]


def _add_colour(project: Project, items: list[Item], cfg: FilterConfig, progress: Progress,
                saver: ManifestSaver, report: FilterReport) -> list[Item]:
    """Colour statistics for items with a file (cached per background colour)."""
    bg = list(cfg.background)
    todo = [it.record for it in items
            if it.record.file and (it.record.extra.get(COLOUR_KEY) or {}).get("background") != bg]

    def work(r: ImageRecord) -> ColourStats:
        im = load_rgb(project.abs(r.file), tuple(bg), max_side=THUMB)
        return colour_stats(np.asarray(im))

    with _task(progress, "colour statistics", len(todo)) as task:
        for rec, res in map_threads(work, todo, cfg.workers):
            if isinstance(res, ItemError):
                rec.fail(res.problem)
                report.errors.append((rec.id, res.problem))
            else:
                rec.extra[COLOUR_KEY] = {**asdict(res), "background": bg}
            task.advance(1)
            saver.tick()
    return [replace(it, facts=replace(it.facts, colour=_stats(it.record))) for it in items
            if it.record.status != Status.error]


def _stats(r: ImageRecord) -> ColourStats | None:
    s = r.extra.get(COLOUR_KEY)
    return ColourStats(s["colour"], s["off_ramp"], s["hue_spread"]) if s else None


@contextmanager
def _task(progress: Progress, description: str, total: int) -> Iterator:
    """A progress bar only when there is work: cached reruns stay quiet."""
    if total:
        with progress.task(description, total=total) as task:
            yield task
    else:
        yield _Quiet()


class _Quiet:
    def advance(self, n: int = 1, **fields) -> None:
        pass

    def note(self, message: str) -> None:
        pass
