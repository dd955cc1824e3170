"""`kiln tag`: run a tagger over the kept images, store its scores, summarise the tags chosen.

Images already tagged by the same model reuse their stored scores (the model is not even
loaded when nothing needs it); `force` reruns the model. The manifest is saved every few
seconds, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import ItemError
from lorakiln.core.manifest import ManifestSaver
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord
from lorakiln.services.project import Project
from lorakiln.tagging.loading import identify, load_tagger, locate
from lorakiln.tagging.merge import activate, initial_tags, store_scores
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

    @property
    def images_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else 0.0


def run_tag(project: Project, cfg: TagConfig, progress: Progress, force: bool = False,
            save_every: float = 2.0) -> TagReport:
    spec, folder = identify(cfg.model, cfg.local_models, project.root)
    spec = spec.with_revision(cfg.revision)
    if cfg.threshold == "balanced" and not cfg.mcut:
        balanced_threshold(spec.name)  # fail before any work when the model has none
    manifest = project.manifest()
    records = manifest.kept()
    report = TagReport(model=spec.name, images=len(records))
    todo = [r for r in records if force or not activate(r, spec.name)]
    report.reused = len(records) - len(todo)
    with ManifestSaver(manifest, every=save_every) as saver:
        if todo:
            files = locate(spec, folder, cfg.cache_dir)
            tagger = load_tagger(files, cfg.device)
            report.origin, report.providers = files.origin, tagger.providers
            start = time.perf_counter()
            with progress.task(f"tag {spec.name}", total=len(todo)) as task:
                paths = [project.abs(r.file) if r.file else project.root / f"<no file for {r.id}>" for r in todo]
                for i, result in predict_files(paths, tagger, cfg.batch_size, cfg.workers):
                    _record(todo[i], result, tagger, cfg, report)
                    task.advance(1)
                    saver.tick()
            report.seconds = time.perf_counter() - start
            report.fallback = tagger.fallback
    _summarise(records, cfg, report)
    return report


def _record(rec: ImageRecord, result, tagger, cfg: TagConfig, report: TagReport) -> None:
    if isinstance(result, ItemError):
        rec.fail(f"tag: {result.problem}")
        report.failed.append((rec.id, result.problem))
        return
    scores, categories = tagger.scores(result, cfg.score_floor)
    store_scores(rec, scores, categories)
    report.ran += 1


def _summarise(records: list[ImageRecord], cfg: TagConfig, report: TagReport) -> None:
    kept = [r for r in records if r.kept]
    for r in kept:
        report.tag_counts.update(initial_tags(r, cfg))
    report.tags_per_image = sum(report.tag_counts.values()) / len(kept) if kept else 0.0
    report.edited_captions = sum(r.caption is not None for r in kept)
