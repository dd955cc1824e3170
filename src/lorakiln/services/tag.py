"""`kiln tag`: run a tagger over the kept images, store its scores, summarise the tags chosen.

The main model ([tag] model) runs first and its scores become the active ones; each extra
tagger of [tag] also runs next and its scores are kept aside (`extra.taggers`). Images already
tagged by a model reuse their stored scores (the model is not even loaded when nothing needs
it); `force` reruns the models. The manifest is saved every few
seconds, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from lorakiln.config.tag import AlsoTagger, TagConfig
from lorakiln.core.errors import ItemError
from lorakiln.core.manifest import ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord
from lorakiln.services.project import Project
from lorakiln.tagging.loading import identify, load_tagger, locate
from lorakiln.tagging.merge import activate, has_scores, initial_tags, store_aside, store_scores
from lorakiln.tagging.models import balanced_threshold
from lorakiln.tagging.wd import predict_files


@dataclass
class TagReport:
    model: str
    images: int = 0  # kept images considered
    ran: int = 0  # images the model ran on
    reused: int = 0  # images whose stored scores were reused
    failed: list[tuple[str, str]] = field(default_factory=list)  # (record id, reason)
    origin: str | None = None  # where the model files came from, when it was loaded
    providers: list[str] = field(default_factory=list)
    fallback: str | None = None  # why batching was not used, if it was not
    seconds: float = 0.0  # model phase wall time
    tag_counts: Counter = field(default_factory=Counter)
    tags_per_image: float = 0.0
    edited_captions: int = 0  # kept images whose caption was already edited: new tags do not reach it
    also: list["TagReport"] = field(default_factory=list)  # one per extra tagger (no summary of its own)

    @property
    def images_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0


def run_tag(project: Project, cfg: TagConfig, progress: Progress, force: bool = False,
            save_every: float = 2.0) -> TagReport:
    main = _identify(project, cfg, cfg)
    extras = []
    for extra in cfg.also:
        found = _identify(project, cfg.for_also(extra), cfg)
        if found[0].name != main[0].name and all(found[0].name != e[0].name for e in extras):
            extras.append(found)
    manifest = project.manifest()
    records = manifest.kept()
    report = TagReport(model=main[0].name, images=len(records))
    with ManifestSaver(manifest, every=save_every) as saver:
        _run_model(project, records, main, cfg, progress, saver, force, report, activate, store_scores)
        for spec, folder in extras:
            sub = TagReport(model=spec.name)
            kept = [r for r in records if r.kept]
            sub.images = len(kept)
            _run_model(project, kept, (spec, folder), cfg, progress, saver, force, sub, has_scores, store_aside)
            report.also.append(sub)
    _summarise(records, cfg, report)
    return report


def _identify(project: Project, model_cfg: TagConfig, cfg: TagConfig):
    """(spec, local folder) of a tagger; fails before any work on a missing balanced value."""
    spec, folder = identify(model_cfg.model, cfg.local_models, project.root)
    spec = spec.with_revision(cfg.revision)
    if model_cfg.threshold == "balanced" and not cfg.mcut:
        balanced_threshold(spec.name)
    return spec, folder


def _run_model(project: Project, records: list[ImageRecord], model, cfg: TagConfig, progress: Progress,
               saver: ManifestSaver, force: bool, report: TagReport, reuse, store) -> None:
    """Run one tagger over the records without its stored scores; `store` keeps the result."""
    spec, folder = model
    todo = [r for r in records if force or not reuse(r, spec.name)]
    report.reused = len(records) - len(todo)
    if not todo:
        return
    files = locate(spec, folder, cfg.cache_dir)
    tagger = load_tagger(files, cfg.device)
    report.origin, report.providers = files.origin, tagger.providers
    start = time.perf_counter()
    with progress.task(f"tag {spec.name}", total=len(todo)) as task:
        paths = [project.abs(r.file) if r.file else project.root / f"<no file for {r.id}>" for r in todo]
        for i, result in predict_files(paths, tagger, cfg.batch_size, cfg.workers):
            _record(todo[i], result, tagger, cfg, report, store)
            task.advance(1)
            saver.tick()
    report.seconds = time.perf_counter() - start
    report.fallback = tagger.fallback


def _record(rec: ImageRecord, result, tagger, cfg: TagConfig, report: TagReport, store=store_scores) -> None:
    if isinstance(result, ItemError):
        rec.fail(f"tag: {result.problem}")
        report.failed.append((rec.id, result.problem))
        return
    scores, categories = tagger.scores(result, cfg.score_floor)
    store(rec, scores, categories)
    report.ran += 1


def _summarise(records: list[ImageRecord], cfg: TagConfig, report: TagReport) -> None:
    kept = [r for r in records if r.kept]
    for r in kept:
        report.tag_counts.update(initial_tags(r, cfg))
    report.tags_per_image = sum(report.tag_counts.values()) / len(kept) if kept else 0.0
    report.edited_captions = sum(r.caption is not None for r in kept)
