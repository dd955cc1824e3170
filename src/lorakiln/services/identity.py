"""The identity filter's work: locate CCIP, compute (or reuse) features, measure differences.

Features are cached in cache/identity/<model>.npz keyed by the sha256 of each file's bytes, so
a rerun loads nothing but the metrics model, and a changed file is measured again.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lorakiln.config.filter import FilterConfig
from lorakiln.core.atomic import write_bytes
from lorakiln.core.errors import KilnError
from lorakiln.core.hashing import sha256_file
from lorakiln.core.progress import Progress
from lorakiln.core.records import ImageRecord
from lorakiln.dataset.decode import load_rgb
from lorakiln.evaluate.embed import Backend, ccip_backend
from lorakiln.services.project import Project

MAX_SIDE = 1536  # decoded no larger: CCIP sees 384x384 (the toy model 64x64)
INFO_KEY = "identity"  # record.extra: {"difference", "threshold", "model"} from the last identity run


@dataclass
class Measured:
    records: list[ImageRecord]  # those with features, in row order of `diff`
    diff: np.ndarray
    threshold: float
    model: str
    computed: int  # features computed this run (the rest came from the cache)
    errors: list[tuple[ImageRecord, str]]


def identity_backend(cfg: FilterConfig, models) -> Backend:
    """CCIP from [filter] ccip_local, else [eval.models] (ccip_local, ccip_model, revision); the threshold
    from [filter] identity_threshold, else [eval.models] ccip_threshold, else metrics.json."""
    threshold = cfg.identity_threshold if cfg.identity_threshold is not None else models.ccip_threshold
    local = cfg.ccip_local or models.ccip_local
    try:
        return ccip_backend(models.ccip_model, local, models.ccip_revision, None, threshold, models.device)
    except KilnError as e:
        raise KilnError(f"identity filter skipped: {e} (or set [filter] ccip_local = \"/path/to/folder\")") from None


def measure(project: Project, records: Sequence[ImageRecord], backend: Backend, cfg: FilterConfig,
            progress: Progress, *, write_cache: bool = True) -> Measured:
    """CCIP features of each record's file (cached by file hash) and their pairwise differences."""
    cache_path = project.cache_dir / "identity" / f"{_safe(backend.id)}.npz"
    cache = _load_cache(cache_path)
    keys, errors = {}, []
    for r in records:
        try:
            keys[r.id] = sha256_file(project.abs(r.file))
        except OSError as e:
            errors.append((r, f"cannot read: {e.strerror or e}"))
    todo = [r for r in records if r.id in keys and keys[r.id] not in cache]
    computed = _compute(project, todo, keys, cache, backend, cfg, progress, errors) if todo else 0
    if computed and write_cache:
        _save_cache(cache_path, cache)
    ok = [r for r in records if r.id in keys and keys[r.id] in cache]
    feats = np.stack([cache[keys[r.id]] for r in ok]) if ok else np.zeros((0, 1), np.float32)
    diff = pairwise(backend, feats) if len(ok) >= 2 else np.zeros((len(ok), len(ok)))
    return Measured(ok, diff, float(backend.threshold), backend.id, computed, errors)


def pairwise(backend: Backend, feats: np.ndarray) -> np.ndarray:
    """The n x n difference matrix in one run of the metrics model (CCIP's metrics take one stack)."""
    emb = backend.load()
    metrics = getattr(emb, "metrics", None)
    if metrics is None:
        return emb.differences(feats, feats)
    return np.asarray(metrics.run(None, {metrics.get_inputs()[0].name: feats.astype(np.float32)})[0])


def _compute(project: Project, todo: list[ImageRecord], keys: dict, cache: dict, backend: Backend,
             cfg: FilterConfig, progress: Progress, errors: list) -> int:
    emb, n = backend.load(), 0
    with progress.task("identity features (CCIP)", total=len(todo)) as task:
        for start in range(0, len(todo), cfg.identity_batch):
            batch, images = [], []
            for r in todo[start:start + cfg.identity_batch]:
                try:
                    images.append(load_rgb(project.abs(r.file), tuple(cfg.background), max_side=MAX_SIDE))
                    batch.append(r)
                except Exception as e:  # one unreadable picture never stops the batch
                    errors.append((r, getattr(e, "problem", None) or f"cannot decode: {_first_line(e)}"))
            if images:
                for r, f in zip(batch, emb.features(images)):
                    cache[keys[r.id]] = np.asarray(f, dtype=np.float32)
                    n += 1
            task.advance(len(todo[start:start + cfg.identity_batch]))
    return n


def _load_cache(path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return {}  # no cache yet, or a broken one: measure again


def _save_cache(path, cache: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buf.getvalue())


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def identity_drops(project: Project, flt, items: list, cfg: FilterConfig, models, progress: Progress, report,
                   write: bool = True) -> dict[str, str]:
    """Record id -> reason for the items the identity filter drops; notes and errors go to `report`."""
    if not items:
        return {}
    try:
        backend = identity_backend(cfg, models)
    except KilnError as e:
        report.notes.append(str(e))
        return {}
    got = measure(project, [it.record for it in items], backend, cfg, progress, write_cache=write)
    for r, why in got.errors:
        r.fail(why)
        report.errors.append((r.id, why))
    by_id = {it.record.id: it for it in items}
    judged = [by_id[r.id] for r in got.records]
    drops, result = flt.decide(judged, got.diff, got.threshold)
    for it, j in zip(judged, result.judgements):
        if not np.isnan(j.difference):
            it.record.extra[INFO_KEY] = {"difference": round(j.difference, 4), "threshold": got.threshold,
                                         "model": got.model}
    cached = len(got.records) - got.computed
    report.notes.append(
        f"identity ({got.model}, threshold {got.threshold:.3g}; features: {got.computed} computed, {cached} cached): "
        + (result.skipped or f"main character in {len(result.main)} of {len(judged)} pictures"))
    return drops
