"""`kiln run`: every stage in order from project.toml, resumable, each stage idempotent.

Each stage is a small function over the project that calls the same service its own command
calls; done work is skipped inside the services (cached pages and hashes, tagged images,
unchanged captions, a run already trained with the same config and data, cached evaluation),
so a rerun or a resume after a kill continues where the last one stopped. The first stage
that fails stops the run with its message, prefixed by the stage's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lorakiln.core.errors import KilnError
from lorakiln.core.progress import Progress
from lorakiln.core.registry import Registry
from lorakiln.services.project import Project


@dataclass
class StageResult:
    stage: str
    summary: str
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    project: Project
    progress: Progress
    force: bool = False
    state: dict = field(default_factory=dict)  # what one stage hands the next (e.g. the trained run)


Stage = Callable[[Context], StageResult]
STAGES: Registry[Stage] = Registry("pipeline stage")
ORDER = ["fetch", "import", "dedupe", "filter", "crop", "tag", "caption", "plan", "export", "train", "eval", "card"]


class StageFailed(KilnError):
    def __init__(self, stage: str, error: Exception):
        self.stage = stage
        super().__init__(f"stage {stage} failed: {error}")


def stages_between(start: str | None, until: str | None, skip: list[str]) -> list[str]:
    for name in (start, until, *skip):
        if name is not None and name not in ORDER:
            raise KilnError(f"unknown stage {name!r}; stages: {', '.join(ORDER)}")
    lo = ORDER.index(start) if start else 0
    hi = ORDER.index(until) if until else len(ORDER) - 1
    if lo > hi:
        raise KilnError(f"--from {start} comes after --until {until}")
    return [s for s in ORDER[lo:hi + 1] if s not in skip]


def run_pipeline(project: Project, progress: Progress, *, start: str | None = None, until: str | None = None,
                 force: bool = False, on_result: Callable[[StageResult], None] | None = None) -> list[StageResult]:
    cfg = project.resolve("run")
    ctx = Context(project, progress, force)
    results = []
    for name in stages_between(start, until, cfg.skip):
        try:
            res = STAGES.get(name)(ctx)
        except (KilnError, OSError) as e:  # a full disk or a vanished folder too: say which stage
            raise StageFailed(name, e) from e
        results.append(res)
        if on_result:
            on_result(res)
    return results


# -- the stages -------------------------------------------------------------------------------
@STAGES.register("fetch")
def _fetch(ctx: Context) -> StageResult:
    from lorakiln.services.fetch import fetch_saved

    cfg = ctx.project.resolve("fetch")
    if not cfg.queries:
        return StageResult("fetch", "no saved queries ([[fetch.queries]])", skipped=True)
    reports = fetch_saved(ctx.project, cfg, ctx.progress, force=ctx.force)
    got = sum(r.downloaded for r in reports)
    return StageResult("fetch", f"{len(reports)} queries, {got} images downloaded", skipped=got == 0)


@STAGES.register("import")
def _import(ctx: Context) -> StageResult:
    from lorakiln.services.importer import import_folder

    folders = ctx.project.resolve("run").import_folders
    if not folders:
        return StageResult("import", "no folders ([run].import_folders)", skipped=True)
    cfg = ctx.project.resolve("import")
    n = 0
    for f in folders:
        path = Path(f).expanduser()
        path = path if path.is_absolute() else ctx.project.root / path
        n += import_folder(ctx.project, path, cfg, ctx.progress).imported
    return StageResult("import", f"{n} images imported from {len(folders)} folder(s)", skipped=n == 0)


@STAGES.register("dedupe")
def _dedupe(ctx: Context) -> StageResult:
    from lorakiln.services.dedupe import run_dedupe

    r = run_dedupe(ctx.project, ctx.project.resolve("dedupe"), ctx.progress)
    return StageResult("dedupe", f"{r.considered} images, {r.hashed} hashed, {len(r.decisions)} duplicates "
                       f"dropped, {len(r.errors)} unreadable", skipped=r.hashed == 0 and not r.decisions)


@STAGES.register("filter")
def _filter(ctx: Context) -> StageResult:
    from lorakiln.services.filter import run_filter

    r = run_filter(ctx.project, ctx.project.resolve("filter"), ctx.progress, tag_cfg=ctx.project.resolve("tag"))
    why = ", ".join(f"{k} {v}" for k, v in r.by_filter().most_common()) or "none"
    notes = "".join(f"; {n}" for n in r.notes)  # e.g. the identity filter skipped: no CCIP model
    return StageResult("filter", f"{r.considered} images checked, {len(r.dropped)} dropped ({why}){notes}",
                       skipped=not r.dropped)


@STAGES.register("crop")
def _crop(ctx: Context) -> StageResult:
    from lorakiln.services.crop import run_crop

    cfg = ctx.project.resolve("crop")
    if not cfg.enabled:
        return StageResult("crop", "off ([crop] enabled = false)", skipped=True)
    r = run_crop(ctx.project, cfg, ctx.progress, force=ctx.force)
    errors = f"; {len(r.errors)} unreadable" if r.errors else ""
    return StageResult("crop", f"{r.considered} pictures looked at, {len(r.made)} close-ups made in subset "
                               f"{cfg.subset!r}, {len(r.not_single)} without exactly one person{errors}",
                       skipped=not r.considered)


@STAGES.register("tag")
def _tag(ctx: Context) -> StageResult:
    from lorakiln.services.tag import run_tag

    r = run_tag(ctx.project, ctx.project.resolve("tag"), ctx.progress)
    return StageResult("tag", f"{r.model}: {r.ran} images tagged, {r.reused} from stored scores, "
                       f"{len(r.failed)} failed", skipped=r.ran == 0)


@STAGES.register("caption")
def _caption(ctx: Context) -> StageResult:
    from lorakiln.services import caption as cap

    cfg = ctx.project.resolve("run")
    steps = {
        "trigger": lambda c: cap.trigger(c),
        "remove": lambda c: cap.remove(c, presets=cfg.remove_presets),
        "prune-core": lambda c: cap.prune_core(c),
        "overlap": lambda c: cap.overlap(c),
        "order": lambda c: cap.order(c),
    }
    changed, notes = [], []
    for step in cfg.caption_steps:
        c = cap.Captions(ctx.project, progress=ctx.progress)  # fresh: each step sees the last one's result
        res = steps[step](c)
        if res.seq is not None and res.edited:
            changed.append(f"{step} ({res.edited})")
        notes += res.notes
    summary = "changed: " + ", ".join(changed) if changed else "captions already up to date"
    return StageResult("caption", summary, skipped=not changed, notes=notes)


@STAGES.register("plan")
def _plan(ctx: Context) -> StageResult:
    from lorakiln.services.plan import plan_project

    outcome = plan_project(ctx.project)
    set_ = [c for c in outcome.changes if c.status == "set"]
    text = ", ".join(f"{'.'.join(c.path)} = {c.new}" for c in set_) or "plan already in project.toml"
    return StageResult("plan", text, skipped=not set_)


@STAGES.register("export")
def _export(ctx: Context) -> StageResult:
    from lorakiln.services.export import export_dataset

    r = export_dataset(ctx.project, ctx.progress)
    folders = ", ".join(f"{k} ({v})" for k, v in r.folders.items())
    return StageResult("export", f"{folders}: {r.captions_written} captions written, {r.unchanged} unchanged",
                       skipped=r.captions_written == 0 and not r.removed and not r.notices(), notes=r.notices())


@STAGES.register("train")
def _train(ctx: Context) -> StageResult:
    from lorakiln.services import train as svc

    plan = svc.plan_training(svc.request_from_project(ctx.project))
    result = svc.run_training(plan, ctx.progress, force=ctx.force)
    ctx.state["run"] = result.run
    if result.skipped:
        return StageResult("train", f"already trained: {result.run.root.name}", skipped=True, notes=plan.warnings)
    ran = f"resumed, ran {result.ran()}" if result.resumed else result.ran()
    return StageResult("train", f"{ran} in {result.seconds:.0f}s -> {result.final}",
                       notes=plan.warnings)


@STAGES.register("eval")
def _eval(ctx: Context) -> StageResult:
    from lorakiln.services.evaluate import evaluate_run

    run = ctx.state.get("run")
    outcome = evaluate_run(ctx.project, run.root.name if run else None, ctx.progress)
    return StageResult("eval", outcome.summary())


@STAGES.register("card")
def _card(ctx: Context) -> StageResult:
    from lorakiln.services.card import make_card

    run = ctx.state.get("run")
    paths = make_card(ctx.project.root, run=run.root.name if run else None)
    return StageResult("card", "wrote " + ", ".join(ctx.project.rel(p) for p in paths))
