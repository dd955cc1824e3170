"""kiln dedupe: hash what is new, group duplicates, keep the best of each group."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, TypeVar

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.core.errors import ItemError
from lorakiln.core.manifest import Manifest, ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.decode import load_rgb
from lorakiln.dataset.dedupe import (
    INFO_KEY,
    Candidate,
    Decision,
    Group,
    decide,
    find_groups,
    groups_of,
    groups_of_decisions,
    is_duplicate_drop,
)
from lorakiln.dataset.perceptual import hash_kind, perceptual_hash
from lorakiln.services.project import Project

KIND_KEY = "phash_kind"  # record.extra: what record.phash was computed with
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class DedupeReport:
    considered: int = 0
    hashed: int = 0
    cached: int = 0
    restored: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)


HASH_SIDE = 512  # perceptual hashes look at 32x32 or less: decode big JPEGs at a reduced scale


def run_dedupe(project: Project, cfg: DedupeConfig, progress: Progress, *, force: bool = False,
               dry_run: bool = False, filter_cfg=None, save_hashes: bool = True) -> DedupeReport:
    """Group and drop duplicates; a dry run drops nothing and saves only the hashes it computed
    (and not those either with `save_hashes=False`: another command is writing the project)."""
    # the filters pick the copy to keep: their settings are read (a bad one reported) before any work
    settings = (filter_cfg or project.resolve("filter"), project.resolve("tag"))
    m = project.manifest()
    report = DedupeReport()
    back = restorable(m, everything=force)
    if not dry_run:
        for r in back:
            restore(r)
    report.restored = len(back)
    pool = m.kept() + ([] if not dry_run else back)
    kind = hash_kind(cfg.hash, cfg.hash_size)
    with ManifestSaver(m, enabled=save_hashes) as saver:
        if cfg.near:
            _hash_missing(project, pool, cfg, kind, force, progress, saver, report)
        pool = [r for r in pool if r.status != Status.error]  # hashing may have found broken files
        cands = [Candidate.of(r, r.phash if r.extra.get(KIND_KEY) == kind else None) for r in pool]
        groups = find_groups(cands, cfg)
        cands = _with_verdicts(project, pool, cands, groups, progress, saver, report, settings)
        keep = [i for i, r in enumerate(pool) if r.status != Status.error]  # judging decodes too
        if len(keep) < len(pool):
            pool, cands = [pool[i] for i in keep], [cands[i] for i in keep]
            groups = find_groups(cands, cfg)
        report.considered = len(pool)
        report.decisions = decide(cands, groups, cfg.hash)
        if dry_run:
            report.groups = groups_of_decisions(report.decisions, {r.id: r for r in pool})
            return report
        for d in report.decisions:
            rec = m[d.drop]
            rec.drop(d.reason, duplicate_of=d.keep)
            rec.extra[INFO_KEY] = {"kind": d.kind, "distance": d.distance}
    report.groups = groups_of(list(m))
    return report


def _with_verdicts(project: Project, pool: list[ImageRecord], cands: list[Candidate], groups: list[list[int]],
                   progress: Progress, saver: ManifestSaver, report: DedupeReport, settings) -> list[Candidate]:
    """Candidates of duplicate groups with what the filters will say of them, to keep one that stays."""
    from lorakiln.services.filter import judge

    members = [pool[i] for g in groups for i in g]
    if not members:
        return cands
    verdicts = judge(project, members, *settings, progress, saver, report)
    out = list(cands)
    for g in groups:
        for i in g:
            v = verdicts.get(pool[i].id)
            if v is not None:
                out[i] = replace(cands[i], survives=v.reason is None, colour=v.colour)
    return out


def regroup(m: Manifest, members: list[ImageRecord], verdicts) -> ImageRecord | None:
    """Keep the best member of one duplicate group (by `verdicts`), every other one dropped in its favour."""
    members = [r for r in members if r.status != Status.error and r.id in verdicts]
    if not members:
        return None
    cands = [Candidate.of(r, r.phash, verdicts[r.id].reason is None, verdicts[r.id].colour) for r in members]
    decisions = decide(cands, [list(range(len(cands)))])
    keep = m[decisions[0].keep] if decisions else members[0]
    if not keep.kept:
        restore(keep)
    for d in decisions:
        rec = m[d.drop]
        rec.restore()
        rec.drop(d.reason, duplicate_of=d.keep)
        rec.extra[INFO_KEY] = {"kind": d.kind, "distance": d.distance}
    return keep


def restorable(m: Manifest, everything: bool) -> list[ImageRecord]:
    """Duplicate drops to look at again: all of them (--force), or those whose kept image is gone."""
    out = []
    for r in m:
        if is_duplicate_drop(r):
            keeper = m.get(r.duplicate_of or "")
            if everything or keeper is None or not keeper.kept:
                out.append(r)
    return out


def restore(r: ImageRecord) -> None:
    r.restore()
    r.extra.pop(INFO_KEY, None)


def show_groups(project: Project) -> list[Group]:
    return groups_of(list(project.manifest()))


def _hash_missing(project: Project, pool: list[ImageRecord], cfg: DedupeConfig, kind: str, force: bool,
                  progress: Progress, saver: ManifestSaver, report: DedupeReport) -> None:
    todo = [r for r in pool if r.file and (force or not r.phash or r.extra.get(KIND_KEY) != kind)]
    report.cached = sum(1 for r in pool if r.file) - len(todo)
    if not todo:
        return

    def work(r: ImageRecord) -> str:
        return perceptual_hash(load_rgb(project.abs(r.file), max_side=HASH_SIDE), cfg.hash, cfg.hash_size)

    with progress.task("hashing", total=len(todo)) as task:
        for rec, res in map_threads(work, todo, cfg.workers):
            if isinstance(res, ItemError):
                rec.fail(res.problem)
                report.errors.append((rec.id, res.problem))
            else:
                rec.phash = res
                rec.extra[KIND_KEY] = kind
                report.hashed += 1
            task.advance(1)
            saver.tick()


def map_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R | ItemError]]:
    """(item, result or ItemError) in input order; decoding in Pillow releases the GIL."""
    items = list(items)
    if workers <= 1 or len(items) < 2:
        yield from ((it, _call(fn, it)) for it in items)
        return
    ex = ThreadPoolExecutor(max_workers=workers)
    try:
        yield from zip(items, ex.map(lambda it: _call(fn, it), items))
    finally:  # on Ctrl-C or kill, do not wait for the queued items
        ex.shutdown(wait=False, cancel_futures=True)


def _call(fn: Callable[[T], R], item: T) -> R | ItemError:
    try:
        return fn(item)
    except ItemError as e:
        return e
    except Exception as e:  # one bad item never stops the batch
        return ItemError(str(getattr(item, "id", item)), f"{type(e).__name__}: {e}")

