"""`kiln train` as a use case: resolve the config once, plan, then build and run the loop.

plan_training() scans the data and does all the arithmetic without loading a model (this is
what --dry-run prints); run_training() loads the base model, builds the network, optimizer and
caches, creates or reopens the run folder and calls the loop. A finished run with the same
config and data is not trained again (--force does); an unfinished one with a saved state is
continued automatically, and --resume RUN continues a given run with its own saved config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from lorakiln.config.resolve import deep_merge
from lorakiln.config.train import TrainConfig
from lorakiln.core import lock
from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.hashing import text_hash
from lorakiln.core.progress import Progress
from lorakiln.train import dryrun
from lorakiln.train.buckets import bucket_info, bucket_resolutions, choose_bucket, resolve_spec
from lorakiln.train.data import DatasetSpec, ScannedDataset, apply_overrides, folder_subsets, scan_dataset
from lorakiln.train.dataset_toml import load_dataset_toml
from lorakiln.train.families.resolution import native_resolution
from lorakiln.train.metadata import DataSummary, summarize
from lorakiln.train.run import RunDir, all_runs


@dataclass
class TrainRequest:
    """Everything `kiln train` needs from the project (or from bare options), resolved once."""

    cfg: TrainConfig
    name: str
    trigger: list[str]
    base: str | None
    runs_dir: Path
    cache_dir: Path
    project_dataset: Path | None = None  # the project's dataset/ (used when no --data / --dataset-config)
    caption_keep_tokens: int = 0  # [caption].keep_tokens
    export_caption_extension: str | None = None  # [export].caption_extension
    config_source: str = "project.toml"
    dataset_problem: Any = None  # the project's dataset/ is partial or stale (services/export_record.py)


def _section(project, name: str):
    from lorakiln.config.sections import sections

    if name not in sections():
        return None
    try:
        return project.resolve(name)
    except KilnError:
        return None


_PATH_FIELDS = [("base",), ("vae",), ("data", "train_data_dir"), ("data", "reg_data_dir"), ("data", "dataset_config"),
                ("sample", "sample_prompts"), ("network", "network_weights")]


def _rooted_path(value: str | None, root: Path) -> str | None:
    if value and not Path(value).expanduser().is_absolute() and (root / value).exists():
        return str((root / value).resolve())
    return value


def rooted(cfg: TrainConfig, root: Path) -> TrainConfig:
    """Relative paths in project.toml are relative to the project folder (when that file exists)."""
    for path in _PATH_FIELDS:
        owner = cfg
        for part in path[:-1]:
            owner = getattr(owner, part)
        value = getattr(owner, path[-1])
        if _rooted_path(value, root) != value:
            setattr(owner, path[-1], _rooted_path(value, root))
    return cfg


def request_from_project(project, cli: Mapping[str, Any] | None = None, base_config: Mapping | None = None) -> TrainRequest:
    """The [train] section with CLI overrides (nested dict); `base_config` replaces project.toml + preset
    (used to continue a run with the config it was started with)."""
    if base_config is None:
        cfg = project.resolve("train", cli)
    else:
        try:
            cfg = TrainConfig.model_validate(deep_merge(dict(base_config), {k: v for k, v in (cli or {}).items()
                                                                           if v is not None}))
        except ValidationError as e:
            err = e.errors()[0]
            raise ConfigError("config.resolved.toml", f"[train] {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    cfg = rooted(cfg, project.root)
    caption, export = _section(project, "caption"), _section(project, "export")
    problem = None
    if not (cfg.data.train_data_dir or cfg.data.dataset_config):  # the project's own dataset/
        from lorakiln.services.export_record import dataset_problem

        problem = dataset_problem(project)
    else:
        problem = _data_dirs_problem(cfg)
    return TrainRequest(
        cfg=cfg, name=project.info.name, trigger=list(project.info.trigger), base=cfg.base or _rooted_path(
            project.info.base, project.root),
        runs_dir=project.runs_dir, cache_dir=project.cache_dir, project_dataset=project.dataset_dir,
        caption_keep_tokens=getattr(caption, "keep_tokens", 0) or 0,
        export_caption_extension=getattr(export, "caption_extension", None), config_source=str(project.config_path),
        dataset_problem=problem)


def _data_dirs_problem(cfg: TrainConfig):
    """A --data / --reg-data folder that an interrupted `kiln export` left partial is refused."""
    from lorakiln.services.export_record import interrupted

    for d in (cfg.data.train_data_dir, cfg.data.reg_data_dir):
        if d and (problem := interrupted(Path(d).expanduser())) is not None:
            return problem
    return None


def request_from_folder(cli: Mapping[str, Any], where: Path) -> TrainRequest:
    """`kiln train --data DIR --base MODEL` outside a project: defaults < preset of the base < env < CLI;
    runs/ and cache/ go into `where` (the current folder)."""
    from lorakiln.config.presets import find_preset
    from lorakiln.config.resolve import resolve_section

    base = cli.get("base")
    preset = ((find_preset(base) or {}).get("train") if base else None)
    cfg = resolve_section(TrainConfig, name="train", preset=preset, cli=cli, source="command line")
    data = cfg.data.train_data_dir or cfg.data.dataset_config
    if not data or not cfg.base:
        raise KilnError(f"no lorakiln project in {where}: pass --data DIR (or --dataset-config FILE) and --base MODEL "
                        "to train on a folder, or run `kiln init NAME --trigger WORD`")
    return TrainRequest(cfg=cfg, name=cfg.output_name or Path(data).stem, trigger=[], base=cfg.base,
                        runs_dir=where / "runs", cache_dir=where / "cache", config_source="command line",
                        dataset_problem=_data_dirs_problem(cfg))


# -- planning -------------------------------------------------------------------------------------

@dataclass
class TrainPlan:
    request: TrainRequest
    cfg: TrainConfig  # effective (after options that disable others)
    family: Any
    datasets: list[ScannedDataset]
    steps: dryrun.StepsTable
    output_name: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bucket_infos: list[dict] = field(default_factory=list)
    resolution: tuple[int, int] = (512, 512)

    @property
    def problems(self) -> list[tuple[str, str]]:
        return [p for d in self.datasets for p in d.problems]

    def summary(self) -> DataSummary:
        return summarize(self.datasets, self.bucket_infos)

    def config_doc(self) -> dict:
        req = self.request
        return {"project": {"name": req.name, "trigger": req.trigger, "base": req.base},
                "train": self.cfg.model_dump(mode="json")}

    def config_hash(self) -> str:
        return text_hash(json.dumps(self.config_doc(), sort_keys=True, default=str))

    def dataset_hash(self) -> str:
        rows = sorted((s.name, s.num_repeats, s.is_reg, it.sha256, text_hash(it.caption))
                      for d in self.datasets for it in d.items for s in [d.spec.subsets[it.subset]])
        return text_hash(json.dumps(rows))


def pick_family(base: str | None, allow_pickle: bool = False):
    """The model family of a base: a family name, the family of a local file/folder, a preset's family
    (base = "animagine-xl-3.1"), or detected from a hub snapshot."""
    from lorakiln.config.presets import find_preset
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.families.loading import HUB_ID, detect_family

    if not base:
        raise KilnError("no base model: set [project].base or [train].base, or pass --base FILE")
    if base in FAMILIES:
        return FAMILIES.get(base)
    if Path(base).expanduser().exists():
        return FAMILIES.get(detect_family(base, allow_pickle))
    family = ((find_preset(base) or {}).get("preset") or {}).get("family")
    if family:
        return FAMILIES.get(family)
    if HUB_ID.match(base):
        return FAMILIES.get(detect_family(base))
    raise KilnError(f"base model {base!r} is not a file, a diffusers folder, a hub id or a known preset")


def _subset_defaults(req: TrainRequest, external: bool):
    d = req.cfg.data
    keep = d.keep_tokens
    if keep is None:
        keep = req.caption_keep_tokens or (0 if external else len(req.trigger))
    updates = {"keep_tokens": keep}
    if not external and "caption_extension" not in d.model_fields_set and req.export_caption_extension:
        updates["caption_extension"] = req.export_caption_extension
    from lorakiln.config.train import SubsetOptions

    return SubsetOptions.model_validate({**{k: getattr(d, k) for k in SubsetOptions.model_fields}, **updates})


def dataset_specs(req: TrainRequest, notes: list[str]) -> list[DatasetSpec]:
    cfg = req.cfg
    d = cfg.data
    if d.dataset_config:
        if d.subsets:
            notes.append("[train.data.subsets] is not applied with a dataset_config: its [[datasets.subsets]] "
                         "tables hold the per-subset options")
        return load_dataset_toml(Path(d.dataset_config), _subset_defaults(req, True), cfg.buckets,
                                 cfg.train_batch_size, notes)
    external = d.train_data_dir is not None
    root = Path(d.train_data_dir) if external else req.project_dataset
    if root is None:
        raise KilnError("no training data: pass --data DIR or --dataset-config FILE, or run `kiln export` first")
    if not external and (not root.is_dir() or not any(root.iterdir())):
        raise KilnError(f"{root} is empty: run `kiln export` to write the training folders, or pass --data DIR")
    opts = _subset_defaults(req, external)
    subsets = folder_subsets(root, opts, default_repeats=d.default_repeats, notes=notes)
    if d.reg_data_dir:
        subsets += folder_subsets(Path(d.reg_data_dir), opts, is_reg=True, default_repeats=d.default_repeats,
                                  notes=notes)
    apply_overrides(subsets, d.subsets, notes)
    return [DatasetSpec(subsets, cfg.buckets, cfg.train_batch_size)]


def _effective(cfg: TrainConfig, family, specs: list[DatasetSpec], warnings: list[str]) -> TrainConfig:
    """Apply the options that switch others off, saying so (never silently)."""
    subs = [s for d in specs for s in d.subsets]
    if cfg.cache.cache_latents:
        for opt in ("random_crop", "color_aug"):
            if any(getattr(s.options, opt) for s in subs):
                warnings.append(f"{opt} is off: latents are cached (cache_latents = true); "
                                "turn caching off to use it")
                for s in subs:
                    s.options = s.options.model_copy(update={opt: False})
    if cfg.cache.cache_text_encoder_outputs:
        if not cfg.network.network_train_unet_only:
            warnings.append("text-encoder training is off: text-encoder outputs are cached "
                            "(cache_text_encoder_outputs = true)")
            cfg = cfg.model_copy(update={"network": cfg.network.model_copy(update={"network_train_unet_only": True})})
        off = {"shuffle_caption": False, "caption_dropout_rate": 0.0, "caption_dropout_every_n_epochs": 0,
               "caption_tag_dropout_rate": 0.0, "enable_wildcard": False}
        used = sorted({k for s in subs for k, v in off.items() if getattr(s.options, k) != v})
        if used:
            warnings.append(f"{', '.join(used)} off: text-encoder outputs are cached (captions must stay the same)")
            for s in subs:
                s.options = s.options.model_copy(update=off)
    if family.arch == "sdxl" and cfg.clip_skip not in (None, 2):
        warnings.append(f"clip_skip {cfg.clip_skip} is ignored for SDXL (it always uses the penultimate layers)")
    return cfg


def _check_optimizer(cfg: TrainConfig, warnings: list[str]) -> None:
    """Unknown optimizer argument names and values the optimizer rejects fail in the plan (so in
    --dry-run), not after the model loads and the latents are cached."""
    from lorakiln.train.optim import check_optimizer, parse_optimizer_args

    opt = cfg.optimizer
    note = check_optimizer(opt.optimizer, opt.learning_rate, parse_optimizer_args(opt.optimizer_args))
    if note:
        warnings.append(note)


def plan_training(req: TrainRequest) -> TrainPlan:
    family = pick_family(req.base, req.cfg.allow_pickle)
    notes: list[str] = []
    warnings: list[str] = []
    if req.dataset_problem is not None:  # dataset/ partial (refused) or older than the captions (said first)
        if req.dataset_problem.severity == "error":
            raise KilnError(req.dataset_problem.message)
        warnings.append(req.dataset_problem.message)
    specs = dataset_specs(req, notes)
    cfg = _effective(req.cfg, family, specs, warnings)
    _check_optimizer(cfg, warnings)
    native = native_resolution(family, req.base)
    datasets, infos = [], []
    for spec in specs:
        bspec = resolve_spec(spec.buckets, native, family.arch, req.config_source)
        scanned = scan_dataset(spec)
        buckets = bucket_resolutions(bspec)
        for it in scanned.items:
            it.bucket = choose_bucket(it.size, bspec, buckets)
        datasets.append(scanned)
        infos.append(bucket_info([it.bucket for it in scanned.items], [it.size for it in scanned.items]))
        notes += scanned.notes
    if not any(it for d in datasets for it in d.items):
        raise KilnError("no readable training images found")
    if all(d.spec.subsets[it.subset].is_reg for d in datasets for it in d.items):
        raise KilnError("only regularisation images found; add training images")
    reso = resolve_spec(cfg.buckets, native, family.arch, req.config_source).resolution
    steps = dryrun.steps_table(datasets, cfg.max_train_epochs, cfg.gradient_accumulation_steps, cfg.max_train_steps)
    return TrainPlan(req, cfg, family, datasets, steps, cfg.output_name or req.name, warnings, notes, infos, reso)


def dry_run_lines(plan: TrainPlan, memory: bool = True) -> list[str]:
    """What --dry-run prints after the resolved config: steps, warnings, memory."""
    from lorakiln.train.optim import find_optimizer

    cfg = plan.cfg
    lines = [f"family: {plan.family.name}   base: {plan.request.base}   resolution: "
             f"{plan.resolution[0]}x{plan.resolution[1]}   output: {plan.output_name}", "", "steps:"]
    lines += [f"  {ln}" for ln in plan.steps.lines()]
    lines += ["", "buckets: " + ", ".join(f"{b['resolution'][0]}x{b['resolution'][1]} ({b['count']})"
                                         for info in plan.bucket_infos for b in info["buckets"].values())]
    for w in plan.warnings:
        lines.append(f"warning: {w}")
    for path, reason in plan.problems:
        lines.append(f"skipped: {path}: {reason}")
    lines += [f"note: {n}" for n in plan.notes]
    if memory:
        from lorakiln.train.network import NetworkSpec

        spec = NetworkSpec.from_config(cfg.network)
        te = not cfg.network.network_train_unet_only and cfg.optimizer.text_encoder_lr != 0
        precision = cfg.mixed_precision if cfg.mixed_precision != "auto" else "bf16"
        est = dryrun.estimate_memory(
            plan.family, spec, resolution=plan.resolution, batch_size=cfg.train_batch_size, precision=precision,
            gradient_checkpointing=cfg.gradient_checkpointing,
            optimizer_state=find_optimizer(cfg.optimizer.optimizer).state_per_param,
            cache_latents=cfg.cache.cache_latents, train_text_encoder=te, full_bf16=cfg.full_bf16)
        auto = " (auto: assuming a bf16 GPU)" if cfg.mixed_precision == "auto" else ""
        lines += ["", f"memory estimate for one GPU at {plan.resolution[0]}x{plan.resolution[1]}, "
                      f"{precision}{auto}:"]
        lines += [f"  {ln}" for ln in est.lines()]
    return lines


# -- running --------------------------------------------------------------------------------------

@dataclass
class TrainOutcome:
    run: RunDir
    skipped: bool = False
    resumed: bool = False
    final: Path | None = None
    steps: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    first_step: int = 0  # steps done before this process (a resumed run's state); steps - first_step ran here

    def ran(self) -> str:
        """What this process ran, against the total: "72 steps", "steps 37-72 (36 steps) of 72"."""
        if not self.first_step:
            return f"{self.steps} steps"
        if self.first_step >= self.steps:
            return f"no step (all {self.steps} were done before)"
        n = self.steps - self.first_step
        if n == 1:
            return f"step {self.steps} of {self.steps}"
        return f"steps {self.first_step + 1}-{self.steps} ({n} steps) of {self.steps}"


def matching_run(plan: TrainPlan) -> RunDir | None:
    """The newest run of the same config and data (done, or unfinished with a saved state)."""
    from lorakiln.train.state import list_states

    fp = {"config": plan.config_hash(), "dataset": plan.dataset_hash()}
    for run in reversed(all_runs(plan.request.runs_dir)):
        info = run.info()
        if info.get("fingerprint") == fp and (info.get("status") == "done" or list_states(run.states_dir)):
            return run
    return None


def run_training(plan: TrainPlan, progress: Progress, *, resume_run: RunDir | None = None,
                 force: bool = False) -> TrainOutcome:
    """Train (or skip/continue as the module docstring says); returns where the result is."""
    if resume_run is None and not force:
        found = matching_run(plan)
        if found is not None and found.info().get("status") == "done":
            return TrainOutcome(found, skipped=True, final=_final(found, plan))
        resume_run = found
    from lorakiln.services.train_runner import execute

    if resume_run is None or os.environ.get("RANK", "0") != "0":  # accelerate's other ranks share the run
        return execute(plan, progress, resume_run)
    with lock.project_lock(resume_run.root, lock.this_command(), hint=RUN_BUSY):  # never two at once
        return execute(plan, progress, resume_run)


RUN_BUSY = "is training this run; let it finish, or stop it before continuing the run"


def _final(run: RunDir, plan: TrainPlan) -> Path | None:
    p = run.checkpoint(plan.output_name)
    return p if p.is_file() else None
