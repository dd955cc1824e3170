"""Build everything the loop needs from a TrainPlan, then run it (the heavy half of services/train.py).

Order: accelerator and precision -> base model -> network (fresh, or from network_weights) ->
decode check / latent cache (bad images are dropped with their reason) -> step arithmetic ->
optimizer and scheduler -> run folder, resolved config, events -> the loop.
"""

from __future__ import annotations

import json
import random
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from lorakiln.core import lock
from lorakiln.core.errors import KilnError
from lorakiln.core.progress import Progress
from lorakiln.services.train import RUN_BUSY, TrainOutcome, TrainPlan
from lorakiln.train import dryrun
from lorakiln.train.batches import Augment, load_item
from lorakiln.train.latent_cache import LatentCache, vae_identity
from lorakiln.train.losses import NoiseSchedule
from lorakiln.train.metadata import RunFacts
from lorakiln.train.run import RunDir, create_run
from lorakiln.train.state import clean_partial_states, list_states, load_state
from lorakiln.train.step import StepSetup, cache_key, encode_pixels

WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(requested: str, cuda: bool, bf16_ok: bool, warnings: list[str]) -> str:
    """accelerate's mixed_precision: auto = bf16/fp16 on a GPU, fp32 ("no") on the CPU."""
    if requested == "auto":
        return ("bf16" if bf16_ok else "fp16") if cuda else "no"
    if requested == "fp16" and not cuda:
        warnings.append("mixed_precision fp16 needs a GPU; training in fp32 on the CPU")
        return "no"
    return requested


def base_sha256(base: str, cache_dir: Path) -> str | None:
    """SHA-256 of a base model file, remembered in cache/base_hashes.json by path, size and mtime."""
    from lorakiln.core.atomic import write_json
    from lorakiln.core.hashing import sha256_file

    p = Path(base).expanduser()
    if not p.is_file():
        return None
    store = cache_dir / "base_hashes.json"
    known = json.loads(store.read_text()) if store.is_file() else {}
    st = p.stat()
    key = f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}"
    if key not in known:
        known[key] = sha256_file(p)
        write_json(store, known)
    return known[key]


def _load_components(plan: TrainPlan, mp: str, device):
    cfg = plan.cfg
    family = plan.family
    dtype = WEIGHT_DTYPES[mp]
    try:
        comps = family.load(plan.request.base, dtype=dtype, vae=cfg.vae, allow_pickle=cfg.allow_pickle,
                            vae_dtype=torch.float32 if cfg.no_half_vae else dtype)
    except KilnError as e:
        raise KilnError(f"{e} (the base model is taken from [train].base, else [project].base; "
                        "pass --base FILE to train on a downloaded .safetensors)") from None
    for m in (comps.unet, comps.vae, *comps.text_encoders):
        m.to(device)
    if cfg.gradient_checkpointing:
        comps.unet.enable_gradient_checkpointing()
        comps.unet.train()
    return comps


def _build_network(plan: TrainPlan, comps, seed: int):
    from lorakiln.train.network import NetworkSpec, create_network, load_network_file

    spec = NetworkSpec.from_config(plan.cfg.network)
    if plan.cfg.network.network_weights:
        net, _ = load_network_file(plan.family, comps, plan.cfg.network.network_weights, spec)
    else:
        net = create_network(plan.family, comps, spec, seed=seed)
    net.apply_to()
    if plan.cfg.full_bf16:
        net.to(torch.bfloat16)
    return net


def _prepare_images(plan: TrainPlan, setup: StepSetup, progress: Progress, events: list) -> None:
    """Encode and cache latents (or just decode-check each image); drop images that fail, with the reason."""
    cache = setup.latent_cache
    jobs, owner = [], {}
    for d, scanned in enumerate(plan.datasets):
        for i, it in enumerate(scanned.items):
            flips = (False, True) if scanned.spec.subsets[it.subset].options.flip_aug else (False,)
            for flip in flips:
                key = cache_key(it, it.bucket, flip, setup.interpolation)
                owner[key] = (d, i)
                jobs.append((key, lambda it=it, flip=flip: load_item(it, it.bucket, Augment(flip), setup.interpolation).pixels))
    failed: set[tuple[int, int]] = set()

    def on_error(key: str, e: Exception) -> None:
        d, i = owner[key]
        item = plan.datasets[d].items[i]
        failed.add((d, i))
        reason = getattr(e, "problem", None) or str(e)
        plan.datasets[d].problems.append((str(item.path), reason))
        events.append(("skipped", {"path": item.path.name, "reason": reason}))

    title = "cache latents" if cache is not None else "check images"
    with progress.task(title, total=len(jobs)) as task:
        if cache is not None:
            cache.fill(jobs, lambda px: encode_pixels(setup, px), plan.cfg.cache.vae_batch_size,
                       on_done=task.advance, on_error=on_error)
        else:
            for key, load in jobs:
                try:
                    load()
                except Exception as e:  # noqa: BLE001 - recorded, never fatal
                    on_error(key, e)
                task.advance(1)
    if failed:
        for d, scanned in enumerate(plan.datasets):
            remap = [i for i in range(len(scanned.items)) if (d, i) not in failed]
            scanned.items = [scanned.items[i] for i in remap]
        if not any(d.items for d in plan.datasets):
            raise KilnError("no training image could be decoded")


def _param_groups(plan: TrainPlan, net) -> list[dict]:
    o = plan.cfg.optimizer
    te_lr = 0.0 if plan.cfg.network.network_train_unet_only else o.text_encoder_lr
    return net.param_groups(o.unet_lr, te_lr, o.learning_rate)


def _load_resume(run: RunDir | None):
    if run is None:
        return None
    clean_partial_states(run.states_dir)
    states = list_states(run.states_dir)
    if not states:
        raise KilnError(f"run {run.id} has no saved state to resume from")
    return load_state(states[-1])


def _rewind_events(run: RunDir, step: int) -> None:
    """The events a killed process wrote after the state at `step` are cut (that work runs again)."""
    r = run.events.rewind(step)
    run.events.emit("resume", step=step, dropped_events=r.dropped, reached_step=r.reached)


def _step_setup(plan: TrainPlan, comps, device, trains_te: bool) -> StepSetup:
    cfg = plan.cfg
    setup = StepSetup(plan.family, comps, plan.datasets, device, cfg.seed,
                      clip_skip=cfg.clip_skip or (2 if plan.family.arch == "sdxl" else 1),
                      max_token_length=cfg.max_token_length, interpolation=cfg.buckets.resize_interpolation,
                      prior_loss_weight=cfg.loss.prior_loss_weight, train_text_encoder=trains_te)
    if cfg.cache.cache_latents:
        disk = plan.request.cache_dir / "latents" if cfg.cache.cache_latents_to_disk else None
        setup.latent_cache = LatentCache(vae_identity(plan.family.name, comps.source, comps.vae), disk)
    return setup


def _te_cache(plan: TrainPlan, setup: StepSetup, warnings: list[str]) -> None:
    """Cache text-encoder outputs when asked and when nothing makes captions or the encoders change."""
    from lorakiln.train.te_cache import TextEncoderCache, te_cache_blockers

    if not plan.cfg.cache.cache_text_encoder_outputs:
        return
    blockers = te_cache_blockers([s.options for d in plan.datasets for s in d.spec.subsets], setup.train_text_encoder)
    if blockers:
        warnings.append("text-encoder outputs are not cached: " + "; ".join(blockers))
        return
    setup.te_cache = TextEncoderCache(lambda caps, sizes: plan.family.encode_prompts(
        setup.comps, caps, clip_skip=setup.clip_skip, max_token_length=setup.max_token_length, sizes=sizes))


def _noise_schedule(cfg, comps) -> NoiseSchedule:
    v = cfg.loss.v_parameterization
    prediction = ("v_prediction" if v else "epsilon") if v is not None else comps.prediction_type
    return NoiseSchedule.from_betas(comps.noise_scheduler.betas, prediction, cfg.loss.zero_terminal_snr)


def _record_start(run: RunDir, plan: TrainPlan, facts: RunFacts, table, info: dict, warnings, skipped, setup) -> None:
    run.write_config(plan.config_doc(), header=f"lorakiln {facts.run_id}: every setting this run used")
    run.update_info(status="running", output_name=plan.output_name, family=plan.family.name,
                    fingerprint={"config": plan.config_hash(), "dataset": plan.dataset_hash()},
                    started_at=facts.started_at, base=facts.base.get("name"))
    ev = run.events
    ev.emit("plan", lines=table.lines(), **info)
    for w in warnings:
        ev.emit("warning", message=w)
    for kind, data in skipped:
        ev.emit(kind, **data)
    if setup.latent_cache is not None:
        ev.emit("latent_cache", hits=setup.latent_cache.hits, encoded=setup.latent_cache.misses)


def execute(plan: TrainPlan, progress: Progress, resume_run: RunDir | None) -> TrainOutcome:
    from accelerate import Accelerator

    from lorakiln.train.loop import LoopJob, total_steps, train_loop
    from lorakiln.train.optim import build_optimizer, describe, parse_optimizer_args
    from lorakiln.train.schedulers import build_scheduler, warmup_steps

    cfg, req = plan.cfg, plan.request
    warnings = list(plan.warnings)
    cuda = torch.cuda.is_available()
    mp = resolve_precision(cfg.mixed_precision, cuda, cuda and torch.cuda.is_bf16_supported(), warnings)
    accelerator = Accelerator(mixed_precision=mp, cpu=not cuda)
    main, world = accelerator.is_main_process, accelerator.num_processes
    resume = _load_resume(resume_run)
    if resume is not None and main:
        _rewind_events(resume_run, resume.position.step)
    session_id = int(resume.extra["session_id"]) if resume else random.SystemRandom().randint(0, 2**31 - 1)
    started_at = float(resume.extra["started_at"]) if resume else time.time()
    torch.manual_seed(cfg.seed)
    comps = _load_components(plan, mp, accelerator.device)
    net = _build_network(plan, comps, cfg.seed)
    groups = _param_groups(plan, net)
    setup = _step_setup(plan, comps, accelerator.device, any(g["name"] != "unet" for g in groups))
    skipped: list = []
    _prepare_images(plan, setup, progress, skipped)
    _te_cache(plan, setup, warnings)
    ga = cfg.gradient_accumulation_steps
    table = dryrun.steps_table(plan.datasets, cfg.max_train_epochs, ga, cfg.max_train_steps, world)
    per_epoch, max_steps = total_steps(table.batches_per_epoch, cfg.max_train_epochs, ga, world, cfg.max_train_steps)
    opt_args = parse_optimizer_args(cfg.optimizer.optimizer_args)
    optimizer = accelerator.prepare(build_optimizer(cfg.optimizer.optimizer, groups, cfg.optimizer.learning_rate,
                                                    opt_args))
    scheduler = build_scheduler(optimizer.optimizer, cfg.optimizer.lr_scheduler, max_steps, cfg.optimizer)

    run = resume_run or (create_run(req.runs_dir, plan.output_name) if main else RunDir(req.runs_dir / "_"))
    with _holding(run, main):  # every training process holds its run's lock: "running" + not held = interrupted
        base_info = {k: v for k, v in comps.source.items() if k in ("name", "legacy_hash", "vae")}
        base_info["sha256"] = base_sha256(req.base, req.cache_dir) if comps.source.get("kind") == "file" else None
        clip_skip = setup.clip_skip if plan.family.arch != "sdxl" else cfg.clip_skip
        facts = RunFacts(session_id, started_at, plan.output_name, plan.resolution, table.batches_per_epoch,
                         max_steps, warmup_steps(cfg.optimizer.lr_warmup_steps, max_steps),
                         describe(cfg.optimizer.optimizer, opt_args), mp, clip_skip, base_info, req.trigger,
                         plan.dataset_hash(), plan.config_hash(), run.id, plan.datasets[0].spec.subsets[0].options)
        sample_fn = _sampler(plan, comps, run, accelerator.device, warnings)
        tb = _tensorboard(cfg, run, warnings, resume.position.step if resume else None) if main else None
        if main:
            _record_start(run, plan, facts, table, {"steps": max_steps, "steps_per_epoch": per_epoch,
                          "epochs": cfg.max_train_epochs, "mixed_precision": mp, "device": str(accelerator.device),
                          "processes": world}, warnings, skipped, setup)
        job = LoopJob(cfg, setup, net, optimizer, scheduler, _noise_schedule(cfg, comps), run, plan.output_name,
                      per_epoch, max_steps, facts, plan.summary(), sample_fn, resume, tb)
        result = train_loop(job, accelerator, progress)
        if tb is not None:
            tb.close()
        if main:
            run.update_info(status="done", finished_at=time.time(), steps=result.steps, final=result.final)
    return TrainOutcome(run, resumed=resume is not None, final=run.root / result.final if result.final else None,
                        steps=result.steps, seconds=result.seconds, warnings=warnings, losses=result.losses,
                        first_step=result.first_step)


@contextmanager
def _holding(run: RunDir, main: bool):
    """The run's lock, held by the main process (other ranks share the run and hold nothing)."""
    if not main:
        yield
        return
    with lock.project_lock(run.root, lock.this_command(), hint=RUN_BUSY):
        yield


def _sampler(plan: TrainPlan, comps, run: RunDir, device, warnings: list[str]):
    from lorakiln.train.sample_prompts import load_prompts
    from lorakiln.train.sampling import make_sampler

    s = plan.cfg.sample
    if not s.sample_prompts:
        if s.sample_every_n_epochs or s.sample_every_n_steps:
            warnings.append("sampling is on but no sample_prompts file is set; no samples")
        return None
    prompts, notes = load_prompts(Path(s.sample_prompts))
    warnings += notes
    if not prompts:
        return None
    from lorakiln.evaluate.samplers import ALIASES, SAMPLERS

    for name in {p.sampler or s.sample_sampler for p in prompts}:
        SAMPLERS.get(ALIASES.get(name, name))  # an unknown sampler fails now, not after the first epoch
    return make_sampler(plan.family, comps, prompts, default_sampler=s.sample_sampler, resolution=plan.resolution,
                        seed=plan.cfg.seed, out_dir=run.samples_dir, device=device)


def _tensorboard(cfg, run: RunDir, warnings: list[str], resumed_at: int | None = None):
    """A TensorBoard writer; a resumed run purges what the killed process logged after its state
    (those steps run again), as events.jsonl is rewound."""
    if not cfg.log_tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.append("log_tensorboard is on but TensorBoard is not installed (pip install tensorboard); "
                        "events.jsonl has the same numbers")
        return None
    return SummaryWriter(str(run.root / "tensorboard"), purge_step=None if resumed_at is None else resumed_at + 1)
