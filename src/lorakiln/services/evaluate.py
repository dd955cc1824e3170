"""`kiln eval RUN`: probe pictures for every checkpoint x weight and the base model, measured and ranked.

Steps: choose checkpoints -> dataset facts (tags, outfit, trigger) and probes -> plan pictures
(cached by content key) -> generate what is missing -> analyse what is new (features, tags,
style) -> metrics per condition -> recommendation -> grids, report.html, metrics.json,
summary.json in runs/<run>/eval/. Each step reuses what exists, so a rerun with one more
weight or checkpoint only generates and analyses that; a killed run resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lorakiln.config.eval import EvalConfig
from lorakiln.core.atomic import write_bytes, write_json, write_text
from lorakiln.core.errors import KilnError
from lorakiln.core.progress import Progress
from lorakiln.evaluate import probes as P
from lorakiln.evaluate.analysis import TaggerHandle, analyse
from lorakiln.evaluate.blind import withdraw_blind
from lorakiln.evaluate.dataset_tags import non_prompt_tags, outfit_tags, subject, tag_shares
from lorakiln.evaluate.descriptor import decode_thumbnail
from lorakiln.evaluate.embed import Backend, ccip_backend, choose_backend, descriptor_backend
from lorakiln.evaluate.library import LoraLibrary
from lorakiln.evaluate.lora_norm import delta_norm
from lorakiln.evaluate.metrics import Condition, Context, Reference, Sample, compute
from lorakiln.evaluate.metrics.fidelity import calibrate
from lorakiln.evaluate.recommend import Candidate, no_effect, recommend
from lorakiln.evaluate.report import ReportData, metrics_json, render_html, summary_json
from lorakiln.evaluate.sampling import LoraSpec, Settings
from lorakiln.formats.lora_file import read_metadata
from lorakiln.services.runs import Checkpoint, find_run_dir, run_checkpoints
from lorakiln.services.sample import Planned, RenderReport, Session, default_base

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".avif"}


@dataclass
class CondPlan:
    key: str
    checkpoint: Checkpoint | None
    weight: float
    items: list[tuple[P.Probe, int, Planned]] = field(default_factory=list)


@dataclass
class DatasetFacts:
    shares: dict[str, float]
    n_images: int
    trigger: list[str]
    subject: str
    outfit: list[str]


@dataclass
class EvalOutcome:
    run: str
    out_dir: Path
    doc: dict  # what summary.json holds
    render: RenderReport
    notes: list[str]
    seconds: float
    images: int

    def summary(self) -> str:
        """One line for `kiln run` and logs."""
        rec = self.doc.get("recommended") or {}
        pick = (f"{rec['checkpoint']} at weight {rec['weight']:g}" if rec.get("checkpoint") else
                "no recommendation: the pick cannot be judged" if rec.get("status") == "cannot_judge"
                else "no recommendation")
        return (f"{pick} ({self.images} pictures, {self.render.made} new, {self.seconds:.1f}s) -> "
                f"{self.out_dir / 'report.html'}")


# -- choosing what to evaluate ------------------------------------------------------------------

def checkpoint_choice(spec: str) -> int | set[int] | None:
    """None for all, N for last or last:N, else the set of epoch numbers; an error naming a bad
    spec (last:0, an empty item, a word that is no epoch number)."""
    from lorakiln.evaluate.axes import last_count
    from lorakiln.evaluate.prompts import split_values

    if spec.strip().lower() == "all":
        return None
    n = last_count(spec)
    if n is not None:
        return n
    items = split_values(spec)
    bad = next((x for x in items if not x.isdigit()), None)
    if bad is not None:
        raise KilnError(f"{spec!r}: {bad!r} is not an epoch number; write all, last, last:N or epochs such as 2,4,6")
    return {int(x) for x in items}


def select_checkpoints(found: list[Checkpoint], spec: str, max_n: int) -> list[Checkpoint]:
    """all (evenly spread to at most max_n, the last kept), last, last:N, or epoch numbers."""
    if not found:
        raise KilnError("the run has no LoRA files yet")
    try:
        choice = checkpoint_choice(spec)
    except KilnError as e:
        raise KilnError(f"[eval] checkpoints {e}") from None
    if isinstance(choice, int):
        return found[-choice:]
    if choice is not None:
        wanted = choice
        pick = [c for c in found if c.epoch in wanted and c.kind != "step"]
        if not pick:
            raise KilnError(f"[eval] checkpoints {spec!r}: none of those epochs is in the run "
                            f"({', '.join(c.label for c in found)})")
        return pick
    if len(found) <= max_n:
        return found
    idx = sorted({round(i * (len(found) - 1) / (max_n - 1)) for i in range(max_n)}) if max_n > 1 else [len(found) - 1]
    return [found[i] for i in idx]


def dataset_facts(meta: dict[str, str], project, cfg: EvalConfig, ref_files: list[Path]) -> DatasetFacts:
    from lorakiln.merge.info import dataset_dirs, tag_frequency

    freq = tag_frequency(meta)
    n = sum(int(d.get("img_count", 0)) for d in dataset_dirs(meta).values())
    if not freq:  # no ss_tag_frequency: the reference pictures' caption files
        n = _reference_caption_tags(ref_files, freq)
    shares = tag_shares(freq, n)
    trig = meta.get("lorakiln_trigger") or meta.get("modelspec.trigger_phrase") or ""
    trigger = [t.strip() for t in trig.split(",") if t.strip()] or list(project.info.trigger)
    outfit = outfit_tags(shares, trigger, cfg.probes.dataset_tags, exclude=non_prompt_tags(project.manifest()))
    return DatasetFacts(shares, n, trigger, subject(shares), outfit)


def _reference_caption_tags(ref_files: list[Path], freq) -> int:
    """Count each caption's tags into `freq`; returns how many captions were read. The reader
    `kiln import` uses: any encoding, no U+FFFD in a tag, an unusable caption file skipped."""
    from lorakiln.captions.sidecar_text import read_image_caption
    from lorakiln.core.errors import ItemError

    n = 0
    for f in ref_files:
        try:
            side = read_image_caption(f, [".txt"])
        except ItemError:
            continue
        if side is not None:
            n += 1
            freq.update({t.strip(): 1 for t in side.text.split(",") if t.strip()})
    return n


def reference_files(cfg: EvalConfig, project, run_config: dict) -> list[Path]:
    """The character's pictures: [eval].reference_dir, the run's training folder, dataset/, or the manifest."""
    data = ((run_config.get("train") or {}).get("data") or {})
    for folder in (cfg.reference_dir, data.get("train_data_dir"), project.dataset_dir):
        if folder:
            root = Path(folder) if Path(folder).is_absolute() else project.root / folder
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(root).parts))
            if files:
                return _spread(files, cfg.max_reference)
    files = [project.abs(r.file) for r in project.manifest().kept() if r.file]
    return _spread([f for f in files if f.is_file()], cfg.max_reference)


def _spread(files: list[Path], n: int) -> list[Path]:
    if len(files) <= n:
        return files
    return [files[round(i * (len(files) - 1) / (n - 1))] for i in range(n)] if n > 1 else files[:1]


# -- planning -------------------------------------------------------------------------------------

def plan_conditions(session: Session, checkpoints: list[Checkpoint], probes: list[P.Probe], facts: DatasetFacts,
                    out: Path) -> list[CondPlan]:
    cfg = session.cfg
    w, h = session.size()
    clip = session.clip_skip([LoraSpec(str(checkpoints[-1].path))])  # one clip skip for base and LoRA alike
    base = Settings(session.sampler, cfg.steps, cfg.cfg, w, h, clip)
    conds = [CondPlan("base", None, 0.0)] + [CondPlan(f"{c.path.stem}-w{wt:g}", c, wt)
                                              for c in checkpoints for wt in cfg.weights]
    for cp in conds:
        main = [LoraSpec(str(cp.checkpoint.path), cp.weight, cp.weight)] if cp.checkpoint else []
        for probe in probes:
            prompt = P.render(probe, facts.trigger, facts.subject, facts.outfit, cfg.prompt_prefix, cfg.prompt_suffix)
            for seed in cfg.probes.seeds:
                job, display = session.job(prompt, cfg.negative, seed, base, main)
                path = out / "images" / cp.key / f"{probe.name}-s{seed}-{session.key(job)[:10]}.png"
                cp.items.append((probe, seed, Planned(job, display, path)))
    return conds


# -- models -----------------------------------------------------------------------------------------

def tagger_handle(cfg: EvalConfig, project, notes: list[str]) -> TaggerHandle | None:
    """The tagger of [eval.models] (downloaded if it must be), else the project's [tag] one if it is
    already on disk (a local folder or the Hugging Face cache): eval never waits on the network for it."""
    from lorakiln.tagging.loading import identify, locate

    try:
        tag = project.resolve("tag")
    except KilnError:
        tag = None
    model = cfg.models.tagger or (tag.model if tag else "wd-swinv2-v3")
    try:
        spec, folder = identify(model, tag.local_models if tag else {}, project.root)
        spec = spec.with_revision(tag.revision if tag else None)
        cache = tag.cache_dir if tag else None
        files = locate(spec, folder, cache) if folder or cfg.models.tagger else _cached_tagger(spec, cache)
        return TaggerHandle(spec.name, files, cfg.models.device)
    except KilnError as e:
        notes.append(f"no tagger, so adherence, view bias and outfit lock-in are not measured: {e}")
        return None


def _cached_tagger(spec, cache_dir: str | None):
    from huggingface_hub import try_to_load_from_cache

    from lorakiln.tagging.loading import ModelFiles

    got = [try_to_load_from_cache(spec.repo_id, f, cache_dir=cache_dir, revision=spec.revision) for f in spec.files]
    if not all(isinstance(g, str) for g in got):
        raise KilnError(f"tagger {spec.name} is not downloaded yet (run `kiln tag` once, or set "
                        "[eval.models] tagger to a tagger name or a folder with model.onnx + selected_tags.csv)")
    return ModelFiles(spec, Path(got[0]), Path(got[1]), f"hub cache {spec.repo_id}@{spec.revision}")


def embed_backend(cfg: EvalConfig, tagger: TaggerHandle | None, notes: list[str]) -> Backend:
    from lorakiln.evaluate.embed import TaggerEmbedder

    m = cfg.models

    def tagger_backend() -> Backend:
        if tagger is None:
            raise KilnError("no tagger available")
        return Backend(f"tagger:{tagger.name}", "tagger", None, tagger.name, lambda: TaggerEmbedder(tagger.tagger))

    resolvers = {"ccip": lambda: ccip_backend(m.ccip_model, m.ccip_local, m.ccip_revision, None, m.ccip_threshold,
                                              m.device, cache_only=m.embedder == "auto"),
                 "tagger": tagger_backend, "descriptor": descriptor_backend}
    backend, why = choose_backend(m.embedder, resolvers)
    notes += why
    if backend.kind != "ccip":
        notes.append(f"character similarity uses the {backend.kind} fallback ({backend.id}), calibrated on the "
                     "reference pictures; install the CCIP model for the reference measure")
    return backend


# -- from analysis to metrics ------------------------------------------------------------------------

def _vec(x) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float32)


def to_condition(cp: CondPlan, docs: dict[Path, dict], backend: Backend, tagger: TaggerHandle | None,
                 facts: DatasetFacts, norms: dict[Path, float | None] | None = None) -> Condition:
    norm = (norms or {}).get(cp.checkpoint.path) if cp.checkpoint else 0.0
    cond = Condition(cp.key, cp.checkpoint.path.name if cp.checkpoint else None,
                     cp.checkpoint.epoch if cp.checkpoint else None, cp.weight,
                     delta_norm=None if norm is None else abs(cp.weight) * norm)
    for probe, seed, planned in cp.items:
        d = docs.get(planned.path)
        if d is None:
            continue
        style = d.get("style") or {}
        cond.samples.append(Sample(
            probe.name, probe.group, seed, P.requested_tags(probe, facts.outfit),
            _vec((d.get("features") or {}).get(backend.id)), _vec(style.get("vector")),
            (d.get("tags") or {}).get(tagger.name) if tagger else None, style.get("border"),
            decode_thumbnail(style["pixels"]) if style.get("pixels") else None))
    return cond


def build_reference(files: list[Path], docs: dict[Path, dict], backend: Backend, facts: DatasetFacts) -> Reference:
    feats = [(docs[f].get("features") or {}).get(backend.id) for f in files if f in docs]
    styles = [(docs[f].get("style") or {}).get("vector") for f in files if f in docs]
    feats, styles = [x for x in feats if x is not None], [x for x in styles if x is not None]
    return Reference(np.asarray(feats, dtype=np.float32) if feats else None,
                     np.asarray(styles, dtype=np.float32) if styles else None,
                     facts.shares, facts.outfit, facts.n_images)


def make_context(reference: Reference, base: Condition, backend: Backend, cfg: EvalConfig,
                 probes: list[P.Probe]) -> Context:
    diff = None
    if reference.features is not None:
        diff = backend.load().differences if backend.kind == "ccip" else _cosine_diff
    thr, upper = (calibrate(reference.features, diff, backend.threshold) if diff else (None, None))
    return Context(reference, base, diff, thr, upper, cfg.models.tag_threshold, {p.name: p for p in probes})


def _cosine_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from lorakiln.evaluate.descriptor import cosine_differences

    return cosine_differences(a, b)


# -- the use case ------------------------------------------------------------------------------------

def run_eval(project, run_ref: str | None, cfg: EvalConfig, progress: Progress, force: bool = False) -> EvalOutcome:
    start = time.perf_counter()
    run = find_run_dir(project, run_ref)
    out = run.root / "eval"
    checkpoints = select_checkpoints(run_checkpoints(run.root), cfg.checkpoints, cfg.max_checkpoints)
    meta = read_metadata(checkpoints[-1].path)
    run_config = run.read_config()
    notes: list[str] = []
    refs = reference_files(cfg, project, run_config)
    if not refs:
        notes.append("no reference pictures found (dataset/ is empty): fidelity cannot be measured; "
                     "set [eval] reference_dir")
    facts = dataset_facts(meta, project, cfg, refs)
    probes = P.probe_set(cfg.probes.probe_set, cfg.probes.only, cfg.probes.extra)
    library = LoraLibrary([c.path for c in checkpoints], cache_dir=project.cache_dir)
    session = Session(cfg, default_base(cfg, project, run_config), library, project.cache_dir)
    plans = plan_conditions(session, checkpoints, probes, facts, out)
    planned = [it[2] for cp in plans for it in cp.items]
    render = session.render(planned, progress, "eval pictures", force)
    for name, reason in render.failed:
        notes.append(f"{name}: {reason}")
    tagger = tagger_handle(cfg, project, notes)
    backend = embed_backend(cfg, tagger, notes)
    docs = analyse([p.path for p in planned if p.path.is_file()], backend, tagger, progress, "analyse pictures")
    ref_docs = analyse(refs, backend, None, progress, "analyse references",
                       store=lambda p: out / "cache" / "reference" / f"{_ref_name(p)}.json")
    norms = {c.path: delta_norm(c.path) for c in checkpoints}
    conds = [to_condition(cp, docs, backend, tagger, facts, norms) for cp in plans]
    ctx = make_context(build_reference(refs, ref_docs, backend, facts), conds[0], backend, cfg, probes)
    data = _report_data(run.id, session, cfg, conds, ctx, plans, probes, facts, backend, tagger, notes, refs)
    _write_outputs(out, data, plans, checkpoints, cfg)
    return EvalOutcome(run.id, out, summary_json(data), render, notes, time.perf_counter() - start, len(planned))


def evaluate_run(project, run_ref: str | None, progress: Progress, force: bool = False,
                 cli: dict | None = None) -> EvalOutcome:
    """`kiln eval` with the project's [eval] settings (what `kiln run` calls)."""
    return run_eval(project, run_ref, project.resolve("eval", cli), progress, force)


def _ref_name(p: Path) -> str:
    from lorakiln.core.hashing import text_hash

    st = p.stat()
    return f"{p.stem[:40]}-{text_hash(f'{p.resolve()}|{st.st_size}|{int(st.st_mtime)}', 12)}"


def _report_data(run_id: str, session: Session, cfg: EvalConfig, conds: list[Condition], ctx: Context,
                 plans: list[CondPlan], probes: list[P.Probe], facts: DatasetFacts, backend: Backend,
                 tagger: TaggerHandle | None, notes: list[str], refs: list[Path]) -> ReportData:
    base_metrics = compute(conds[0], ctx)
    measured = [compute(cond, ctx) for cond in conds[1:]]
    notes += withdraw_blind(base_metrics, measured, f"the {backend.kind} embedder ({backend.id})",
                            f"the tagger ({tagger.name})" if tagger else "the tagger")
    rows, cands = [], []
    for cond, mv in zip(conds[1:], measured):
        rows.append({"checkpoint": cond.checkpoint, "epoch": cond.epoch, "weight": cond.weight,
                     "metrics": {k: v.to_json() for k, v in mv.items()}})
        cands.append(Candidate(cond.checkpoint, cond.epoch, cond.weight, {k: v.value for k, v in mv.items()},
                               {k: v.details for k, v in mv.items()}, {k: v.ci for k, v in mv.items()}))
    base_values = {k: v.value for k, v in base_metrics.items()}
    rec = recommend(cands, cfg.recommend.fidelity_weight, cfg.recommend.min_fidelity, base_values)
    idle = no_effect(cands, base_values)
    if idle:
        rec.findings.insert(0, idle)
    w, h = session.size()
    settings: dict[str, Any] = {
        "base": Path(session.base).name if Path(session.base).exists() else session.base,
        "family": session.family.name, "sampler": session.sampler, "steps": cfg.steps,
        "cfg": cfg.cfg, "size": f"{w}x{h}", "seeds": cfg.probes.seeds, "weights": cfg.weights,
        "probe_set": cfg.probes.probe_set,
        "checkpoints": list(dict.fromkeys(cp.checkpoint.path.name for cp in plans[1:])),
        "embedder": backend.id, "embedder_origin": backend.origin, "same_threshold": ctx.threshold,
        "upper_bound": ctx.upper_bound, "tagger": tagger.name if tagger else None,
        "tag_threshold": cfg.models.tag_threshold, "reference_pictures": len(refs), "trigger": facts.trigger,
        "training_outfit": facts.outfit, "dataset_images": facts.n_images}
    probe_rows = [{"name": p.name, "group": p.group, "tags": list(P.requested_tags(p, facts.outfit)),
                   "prompt": P.render(p, facts.trigger, facts.subject, facts.outfit, cfg.prompt_prefix,
                                      cfg.prompt_suffix)} for p in probes]
    grids = [("overview", "grid.png")] + [(f"probe: {p.name}", f"grids/grid-{p.name}.png") for p in probes]
    return ReportData(run_id, settings, rows, {"metrics": {k: v.to_json() for k, v in base_metrics.items()}},
                      rec, grids, probe_rows, notes)


# -- outputs ---------------------------------------------------------------------------------------

def _grid_for(plans: list[CondPlan], checkpoints: list[Checkpoint], cfg: EvalConfig, probe: str, seed: int):
    from PIL import Image

    from lorakiln.evaluate.grid import render_grid

    def pic(cp: CondPlan):
        hit = next((pl for pr, s, pl in cp.items if pr.name == probe and s == seed), None)
        return Image.open(hit.path).convert("RGB") if hit is not None and hit.path.is_file() else None

    base = pic(plans[0])
    by_key = {cp.key: cp for cp in plans}
    rows = [[base] + [pic(by_key[f"{c.path.stem}-w{w:g}"]) for w in cfg.weights] for c in checkpoints]
    return render_grid(rows, ["base model"] + [f"weight {w:g}" for w in cfg.weights], [c.title for c in checkpoints],
                       f"{probe}, seed {seed}")


def _write_outputs(out: Path, data: ReportData, plans: list[CondPlan], checkpoints: list[Checkpoint],
                   cfg: EvalConfig) -> None:
    from lorakiln.evaluate.infotext import png_bytes

    seed = cfg.probes.seeds[0]
    probes = [p["name"] for p in data.probes]
    first = next((p["name"] for p in data.probes if p["group"] == "fidelity"), probes[0])
    write_bytes(out / "grid.png", png_bytes(_grid_for(plans, checkpoints, cfg, first, seed), ""))
    for name in probes:
        write_bytes(out / "grids" / f"grid-{name}.png", png_bytes(_grid_for(plans, checkpoints, cfg, name, seed), ""))
    write_json(out / "metrics.json", metrics_json(data))
    write_json(out / "summary.json", summary_json(data))
    write_text(out / "report.html", render_html(data))


def load_summary(run_root: Path) -> dict | None:
    p = Path(run_root) / "eval" / "summary.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
