"""`kiln sample` and `kiln grid`: pictures from a base model plus LoRAs, saved with A1111 infotext.

A Session holds the resolved [eval] settings, the LoRA library and the (lazily loaded) model.
Pictures are named by a hash of everything they depend on, so a rerun reuses what exists
(`force` redoes it) and a killed run resumes. The model is loaded only if something is missing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lorakiln.config.eval import EvalConfig
from lorakiln.core.atomic import write_bytes
from lorakiln.core.errors import KilnError
from lorakiln.core.hashing import text_hash
from lorakiln.core.progress import Progress
from lorakiln.evaluate.axes import AxisContext, Cell, parse_axis, plan_cells
from lorakiln.evaluate.grid import render_grid
from lorakiln.evaluate.infotext import png_bytes, sampler_key
from lorakiln.evaluate.library import LoraLibrary
from lorakiln.evaluate.loading import LoadedModel, identity_of, load_model
from lorakiln.evaluate.prompts import LoraRef, extract_loras
from lorakiln.evaluate.sampling import Engine, Job, LoraSpec, Settings, check_size
from lorakiln.evaluate.store import infotext_for, job_key, save_png, slug


@dataclass
class Planned:
    job: Job
    display: str  # prompt as written in the infotext (LoRA tags included)
    path: Path


@dataclass
class RenderReport:
    made: int = 0
    reused: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)
    unmatched: dict[str, list[str]] = field(default_factory=dict)


class Session:
    """Everything sampling needs, resolved once; the model loads on first use."""

    def __init__(self, cfg: EvalConfig, base: str, library: LoraLibrary, cache_dir: Path | None = None):
        from lorakiln.services.train import pick_family

        self.cfg, self.base, self.library, self.cache_dir = cfg, base, library, cache_dir
        self.family = pick_family(base)
        self.identity = identity_of(self.family.name, base)
        self._model: LoadedModel | None = None
        self.sampler = sampler_key(cfg.sampler)

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            self._model = load_model(self.base, device=self.cfg.device, precision=self.cfg.precision,
                                     cache_dir=self.cache_dir)
        return self._model

    def size(self, width: int | None = None, height: int | None = None) -> tuple[int, int]:
        from lorakiln.train.families.resolution import native_resolution

        r = native_resolution(self.family, self.base)  # the base file's own size (the toy base: 64)
        return check_size(width or self.cfg.width or r, height or self.cfg.height or r)

    def clip_skip(self, loras: Sequence[LoraSpec]) -> int:
        if self.cfg.clip_skip:
            return self.cfg.clip_skip
        for lr in loras:
            v = self.library.metadata(Path(lr.path)).get("ss_clip_skip")
            if v and v.isdigit():
                return int(v)
        return 1

    def spec(self, ref: LoraRef) -> LoraSpec:
        return LoraSpec(str(self.library.resolve(ref.name)), ref.te, ref.unet)

    def job(self, raw_prompt: str, negative: str, seed: int, settings: Settings,
            main: Sequence[LoraSpec] = ()) -> tuple[Job, str]:
        """(job, display prompt): LoRA tags of the prompt resolved and stacked after `main`."""
        text, refs = extract_loras(raw_prompt)
        loras = tuple(lr for lr in (*main, *(self.spec(r) for r in refs)) if lr.te or lr.unet)  # weight 0 = none
        s = Settings(settings.sampler, settings.steps, settings.cfg, settings.width, settings.height,
                     settings.clip_skip or self.clip_skip(loras), tuple(loras))
        tags = [LoraRef(self.library.alias(Path(lr.path)), lr.te, lr.unet).tag() for lr in main]
        display = ", ".join(p for p in (raw_prompt.strip(), *tags) if p)
        return Job(text, negative, seed, s), display

    def key(self, job: Job) -> str:
        return job_key(self.identity, job, {lr.path: self.library.hash(Path(lr.path)) for lr in job.settings.loras})

    def infotext(self, p: Planned) -> str:
        m = self.model
        paths = [lr.path for lr in p.job.settings.loras]
        return infotext_for(p.job, p.display, m.name, m.hash, {x: self.library.alias(Path(x)) for x in paths},
                            {x: self.library.hash(Path(x)) for x in paths})

    def render(self, planned: Sequence[Planned], progress: Progress, title: str, force: bool = False) -> RenderReport:
        """Make every planned picture that does not exist yet (all of them with `force`)."""
        report = RenderReport()
        todo = [p for p in planned if force or not p.path.is_file()]
        report.reused = len(planned) - len(todo)
        if not todo:
            return report
        by_job = {}
        for p in todo:
            by_job.setdefault(p.job, []).append(p)
        engine = Engine(self.model.family, self.model.comps, self.model.device, self.cfg.batch_size)
        with progress.task(title, total=len(todo)) as task:
            def done(job: Job, image) -> None:
                for p in by_job[job]:
                    save_png(p.path, image, self.infotext(p))
                    report.made += 1
                    task.advance(1)

            def failed(job: Job, reason: str) -> None:
                for p in by_job[job]:
                    report.failed.append((p.path.name, reason))
                    task.note(f"{p.path.name}: {reason}")
                    task.advance(1)

            engine.render(list(by_job), done, failed)
        report.unmatched = engine.unmatched
        return report


def default_base(cfg: EvalConfig, project=None, run_config: dict | None = None) -> str:
    """--base / [eval].base, else the run's training base, else [project].base."""
    rc = run_config or {}
    base = cfg.base or (rc.get("train") or {}).get("base") or (rc.get("project") or {}).get("base")
    if not base and project is not None:
        base = project.info.base
    if not base:
        raise KilnError("no base model: pass --base FILE (or a family name such as tiny-sd15), "
                        "or set [project].base / [eval].base")
    return str(base)


# -- kiln sample ---------------------------------------------------------------------------------

@dataclass
class PromptItem:
    """One prompt; per-prompt options (from a kohya-style prompt file) override the defaults."""

    prompt: str
    negative: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    sampler: str | None = None


@dataclass
class SampleOutcome:
    files: list[Path]
    report: RenderReport
    seeds: list[int]


def plan_samples(session: Session, items: Sequence[PromptItem], seeds: Sequence[int], negative: str | None,
                 main: Sequence[LoraSpec], out_dir: Path) -> list[Planned]:
    cfg = session.cfg
    planned = []
    for item in items:
        w, h = session.size(item.width, item.height)
        base = Settings(sampler_key(item.sampler) if item.sampler else session.sampler, item.steps or cfg.steps,
                        cfg.cfg if item.cfg is None else item.cfg, w, h, 0)
        neg = item.negative if item.negative is not None else (negative if negative is not None else cfg.negative)
        for seed in ([item.seed] if item.seed is not None else seeds):
            job, display = session.job(item.prompt, neg, seed, base, main)
            key = session.key(job)
            planned.append(Planned(job, display, out_dir / f"{slug(display)}-{seed}-{key[:10]}.png"))
    return planned


def run_sample(session: Session, items: Sequence[PromptItem], *, seeds: Sequence[int] | None, negative: str | None,
               loras: Sequence[tuple[Path, float]], out_dir: Path, progress: Progress,
               force: bool = False) -> SampleOutcome:
    if not items:
        raise KilnError("no prompt: give a prompt or --prompt-file FILE")
    seeds = list(seeds) if seeds else [random.SystemRandom().randint(0, 2**32 - 1)]
    main = [LoraSpec(str(p), w, w) for p, w in loras]
    planned = plan_samples(session, items, seeds, negative, main, Path(out_dir))
    report = session.render(planned, progress, "sample", force)
    return SampleOutcome([p.path for p in planned if p.path.is_file()], report, seeds)


# -- kiln grid -----------------------------------------------------------------------------------

@dataclass
class GridOutcome:
    files: list[Path]
    cells: int
    report: RenderReport


def checkpoint_choices(run_root: Path | None, loras: Sequence[tuple[Path, float]]) -> dict[str, str]:
    """label -> file for the checkpoint axis: a run's epoch/step checkpoints and final file, or --lora files."""
    if run_root is not None:
        from lorakiln.services.runs import run_checkpoints

        return {c.label: str(c.path) for c in run_checkpoints(run_root)}
    return {Path(p).stem: str(p) for p, _ in loras}


CHECKPOINT_AXES = ("checkpoint", "checkpoints", "epoch", "epochs")


def grid_run(project, run: str | None, axes: Sequence[str | None], has_loras: bool) -> tuple[Path | None, dict]:
    """(run folder, its resolved config) for `kiln grid`: the run named, or the newest one when a
    checkpoint axis is asked without --lora files; (None, {}) when no run is involved."""
    wants = any((a or "").split("=")[0].strip().lower() in CHECKPOINT_AXES for a in axes)
    if run is None and not (wants and not has_loras and project is not None):
        return None, {}
    if project is None:
        raise KilnError("a run needs a project: pass --project DIR")
    from lorakiln.services.runs import find_run_dir

    rd = find_run_dir(project, run)
    return rd.root, rd.read_config()


def run_grid(session: Session, *, prompt: str, negative: str | None, seed: int, axes: Sequence[str | None],
             checkpoints: dict[str, str], loras: Sequence[tuple[Path, float]], out_dir: Path, progress: Progress,
             force: bool = False) -> GridOutcome:
    """One labelled PNG per Z value; cells are cached in out_dir/cells."""
    cfg = session.cfg
    ctx = AxisContext(checkpoints or None)
    parsed = [parse_axis(a, ctx) if a else None for a in axes]
    main_file = (str(loras[0][0]) if loras else None) or (list(checkpoints.values())[-1] if checkpoints else None)
    weight = loras[0][1] if loras else 1.0
    extra = [LoraSpec(str(p), w, w) for p, w in loras[1:]]
    base = Cell(prompt, negative if negative is not None else cfg.negative, seed, cfg.cfg, cfg.steps, session.sampler,
                main_file, weight)
    cells = plan_cells(base, parsed)
    w, h = session.size()
    clip = session.clip_skip([LoraSpec(main_file)] if main_file else extra)  # the same in every cell
    planned: dict[tuple[int, int, int], Planned] = {}
    for pos, c in cells.items():
        main = [LoraSpec(c.checkpoint, c.weight, c.weight)] if c.checkpoint else []
        job, display = session.job(c.prompt, c.negative, c.seed,
                                   Settings(c.sampler, c.steps, c.cfg, w, h, clip), [*main, *extra])
        planned[pos] = Planned(job, display, Path(out_dir) / "cells" / f"{session.key(job)[:20]}.png")
    report = session.render(list({p.path: p for p in planned.values()}.values()), progress, "grid", force)
    files = _compose(planned, parsed, Path(out_dir), axes)
    return GridOutcome(files, len(planned), report)


def _compose(planned: dict, parsed: list, out_dir: Path, axes: Sequence[str | None]) -> list[Path]:
    from PIL import Image

    nx, ny, nz = (max(k[i] for k in planned) + 1 for i in range(3))
    labels = [(a[0].labels if a else [""]) for a in (parsed + [None] * 3)[:3]]
    tag = text_hash("|".join(a or "" for a in axes), 6)
    kinds = "-".join(a[0].kind for a in parsed if a) or "single"
    files = []
    for z in range(nz):
        rows = []
        for y in range(ny):
            row = []
            for x in range(nx):
                p = planned[(x, y, z)].path
                row.append(Image.open(p).convert("RGB") if p.is_file() else None)
            rows.append(row)
        title = labels[2][z] if nz > 1 or labels[2][z] else None
        img = render_grid(rows, labels[0] if parsed[0] else [], labels[1] if len(parsed) > 1 and parsed[1] else [],
                          title or None)
        first = planned[(0, 0, z)]
        info = first.path.is_file() and Image.open(first.path).info.get("parameters") or ""
        path = out_dir / (f"grid-{kinds}-{tag}" + (f"-z{z + 1}" if nz > 1 else "") + ".png")
        write_bytes(path, png_bytes(img, info))
        files.append(path)
    return files


# -- configuration at the edge -------------------------------------------------------------------

def resolve_config(project, cli: dict | None = None) -> EvalConfig:
    """[eval] from the project (preset < project.toml < env < CLI), or defaults < env < CLI without one."""
    if project is not None:
        return project.resolve("eval", cli)
    from lorakiln.config.resolve import resolve_section

    return resolve_section(EvalConfig, name="eval", cli=cli, source="[eval] options")


def find_project(option: Path | None):
    """The project if there is one here (or at --project), else None: sampling works without one."""
    from lorakiln.core.errors import ProjectNotFound
    from lorakiln.services.project import open_project

    try:
        return open_project(option)
    except ProjectNotFound:
        if option is not None:
            raise
        return None
