"""The training loop: the one long function, on HF accelerate.

Everything it needs arrives built (components, network, optimizer, scheduler, datasets with
buckets, caches, run folder); it steps, logs, samples, saves checkpoints and states, and stops.
Devices come from the Accelerator, so `accelerate launch` on several GPUs needs no change:
each process takes every N-th batch, gradients are averaged across processes, and only the
main process writes files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from lorakiln.core.progress import Progress
from lorakiln.train import state as st
from lorakiln.train.batches import epoch_batches
from lorakiln.train.losses import NoiseSchedule
from lorakiln.train.metadata import training_metadata
from lorakiln.train.run import RunDir
from lorakiln.train.step import StepSetup, assemble, diffusion_step_loss, seed_from

SAVE_DTYPES = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class LoopJob:
    cfg: Any  # TrainConfig
    setup: StepSetup
    network: Any  # LoRANetwork (applied)
    optimizer: Any  # prepared by the accelerator
    scheduler: Any  # LambdaLR, stepped once per optimizer step
    noise: NoiseSchedule
    run: RunDir
    output_name: str
    steps_per_epoch: int
    max_steps: int
    facts: Any  # metadata.RunFacts
    data: Any  # metadata.DataSummary
    sample: Callable[[str, int, int], list[str]] | None = None  # (tag, epoch, step) -> files written
    resume: st.LoadedState | None = None
    tensorboard: Any = None
    saved: list[str] = field(default_factory=list)


@dataclass
class LoopResult:
    steps: int  # optimizer steps done in all (this process and the ones it resumed)
    epochs: int
    final: str | None
    losses: list[float]  # this process's only
    seconds: float  # this process's only
    first_step: int = 0  # steps done before this process started (the resumed state's step)

    @property
    def ran(self) -> int:
        """Steps this process ran."""
        return self.steps - self.first_step


def _smooth(prev: float | None, x: float, k: float = 0.1) -> float:
    return x if prev is None else prev + k * (x - prev)


def train_loop(job: LoopJob, accelerator, progress: Progress) -> LoopResult:
    cfg, setup, net, opt, sched = job.cfg, job.setup, job.network, job.optimizer, job.scheduler
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    ga = cfg.gradient_accumulation_steps
    epochs = cfg.max_train_epochs
    params = net.trainable_parameters()
    pos = st.Position()
    if job.resume is not None:
        net.load_state_dict(job.resume.weights)
        opt.load_state_dict(job.resume.optimizer)
        sched.load_state_dict(job.resume.scheduler)
        if accelerator.scaler is not None and "scaler" in job.resume.extra:
            accelerator.scaler.load_state_dict(job.resume.extra["scaler"])
        st.set_rng_state(job.resume.rng)
        pos = job.resume.position
    first_step = pos.step
    events = job.run.events if main else None
    te_stopped = False
    smoothed, losses = None, []
    started = time.monotonic()
    final_path = None

    def emit(kind: str, **data) -> None:
        if events is not None:
            events.emit(kind, **data)

    def save(kind: str, epoch: int, step: int, state_too: bool) -> None:
        """kind: "epoch" (NAME-000003), "step" (NAME-step00000500) or "final" (NAME)."""
        nonlocal final_path
        accelerator.wait_for_everyone()
        if not main:
            return
        path = job.run.checkpoint(job.output_name, epoch if kind == "epoch" else None,
                                  step if kind == "step" else None)
        meta = {**net.metadata(setup.family, setup.comps, clip_skip=job.facts.clip_skip),
                **training_metadata(cfg, job.facts, job.data, epoch=epoch, step=step, finished_at=time.time())}
        net.save(path, meta, dtype=SAVE_DTYPES[cfg.save.save_precision])
        job.saved.append(path.name)
        emit("save", path=path.name, epoch=epoch, step=step)
        if kind == "final":
            final_path = path
        else:
            keep = cfg.save.save_last_n_epochs if kind == "epoch" else cfg.save.save_last_n_steps
            for gone in job.run.prune_checkpoints(job.output_name, kind, keep):
                emit("prune", path=gone.name)
        if state_too:
            save_state(epoch, step)

    def save_state(epoch: int, step: int) -> None:
        if not main:
            return
        extra = {"session_id": job.facts.session_id, "started_at": job.facts.started_at}
        if accelerator.scaler is not None:
            extra["scaler"] = accelerator.scaler.state_dict()
        path = st.save_state(job.run.states_dir, st.Position(pos.epoch, pos.batch, pos.step),
                             weights=net.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                             extra=extra)
        st.prune_states(job.run.states_dir, cfg.save.save_last_n_states)
        emit("state", path=f"state/{path.name}", epoch=epoch, step=step, batch=pos.batch)

    def sample(epoch: int, step: int, tag: str) -> None:
        if job.sample is None:
            return
        accelerator.wait_for_everyone()
        if main:
            net.eval()
            files = job.sample(tag, epoch, step)
            net.train()
            emit("samples", epoch=epoch, step=step, files=files)

    def stop_te_if_due() -> None:
        nonlocal te_stopped
        n = cfg.network.stop_text_encoder_training
        if n and not te_stopped and pos.step >= n:
            parts = net.stop_text_encoder_training()
            setup.train_text_encoder = False
            te_stopped = True
            emit("text_encoder_stopped", step=pos.step, parts=parts)

    names = [g.get("name") for g in opt.param_groups]
    unet_group = names.index("unet") if "unet" in names else 0
    net.train()
    emit("start", resumed=job.resume is not None, epoch=pos.epoch, step=pos.step, max_steps=job.max_steps,
         steps_per_epoch=job.steps_per_epoch, epochs=epochs)
    if cfg.sample.sample_at_first and pos.step == 0:
        sample(0, 0, "first")
    # a resumed run counts only what it runs, so its rate and ETA are its own
    title = f"train (steps {first_step + 1}-{job.max_steps})" if first_step else "train"
    with progress.task(title, total=job.max_steps - first_step) as task:
        t_last = time.monotonic()
        while pos.epoch <= epochs and pos.step < job.max_steps:
            epoch = pos.epoch
            mine = rank_batches(epoch_batches(setup.datasets, cfg.seed, epoch), rank, world)
            stop_te_if_due()
            micro = 0
            for index in range(pos.batch, len(mine)):
                batch = mine[index]
                inputs = assemble(setup, batch, epoch, index)
                gen = torch.Generator().manual_seed(seed_from(cfg.seed, epoch, index, rank, "noise"))
                loss = diffusion_step_loss(setup, inputs, job.noise, cfg.loss, gen, accelerator.autocast())
                accelerator.backward(loss / ga)
                micro += 1
                losses.append(float(loss.detach()))
                pos.batch = index + 1
                if micro % ga and index + 1 < len(mine):
                    continue
                if world > 1:  # every process reduces the same tensors, or the collectives hang
                    for p in params:
                        if p.requires_grad:
                            if p.grad is None:  # e.g. module dropout skipped it here but not elsewhere
                                p.grad = torch.zeros_like(p)
                            p.grad.copy_(accelerator.reduce(p.grad, reduction="mean"))
                if cfg.optimizer.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.optimizer.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                pos.step += 1
                step_loss = sum(losses[-micro:]) / micro
                micro = 0
                smoothed = _smooth(smoothed, step_loss)
                now = time.monotonic()
                its = 1.0 / max(now - t_last, 1e-9)
                t_last = now
                lrs = sched.get_last_lr()
                task.advance(1, loss=round(smoothed, 4), lr=lrs[unet_group], epoch=epoch)
                emit("step", step=pos.step, epoch=epoch, loss=round(step_loss, 6), loss_avg=round(smoothed, 6),
                     lr=dict(zip(names, lrs)), its=round(its, 3))
                if job.tensorboard is not None:
                    job.tensorboard.add_scalar("loss", step_loss, pos.step)
                    job.tensorboard.add_scalar("lr", lrs[0], pos.step)
                stop_te_if_due()
                done = pos.step >= job.max_steps
                if cfg.save.save_every_n_steps and pos.step % cfg.save.save_every_n_steps == 0 and not done:
                    save("step", epoch, pos.step, cfg.save.save_state)
                elif (cfg.save.save_state and cfg.save.save_state_every_n_steps
                      and pos.step % cfg.save.save_state_every_n_steps == 0 and not done):
                    save_state(epoch, pos.step)
                if cfg.sample.sample_every_n_steps and pos.step % cfg.sample.sample_every_n_steps == 0:
                    sample(epoch, pos.step, f"s{pos.step:08d}")
                if done:
                    break
            finished_epoch = pos.batch >= len(mine)
            if finished_epoch:
                pos.epoch, pos.batch = epoch + 1, 0
            last = pos.epoch > epochs or pos.step >= job.max_steps
            if finished_epoch and not last:
                every = cfg.save.save_every_n_epochs
                if every and epoch % every == 0:
                    save("epoch", epoch, pos.step, cfg.save.save_state)
                if cfg.sample.sample_every_n_epochs and epoch % cfg.sample.sample_every_n_epochs == 0:
                    sample(epoch, pos.step, f"e{epoch:06d}")
            if last:
                break
    final_epoch = min(pos.epoch if pos.batch else pos.epoch - 1, epochs)
    save("final", final_epoch, pos.step, cfg.save.save_state)
    if cfg.sample.sample_every_n_epochs or cfg.sample.sample_every_n_steps:
        sample(final_epoch, pos.step, "final")
    seconds = time.monotonic() - started
    emit("end", step=pos.step, epoch=final_epoch, first_step=first_step, ran=pos.step - first_step,
         seconds=round(seconds, 2), final=final_path.name if final_path else None)
    return LoopResult(pos.step, final_epoch, final_path.name if final_path else None, losses, seconds, first_step)


def rank_batches(batches: list, rank: int, world: int) -> list:
    """This process's share of an epoch: every `world`-th batch, the list first padded by wrapping
    around so that every process gets the same number (kohya/DistributedSampler's rule; with
    unequal shares a process waits forever for the others' gradient reduction)."""
    if world <= 1 or not batches:
        return batches
    padded = -(-len(batches) // world) * world
    return [batches[i % len(batches)] for i in range(padded)][rank::world]


def total_steps(batches_per_epoch: int, epochs: int, ga: int, world: int = 1, max_steps: int | None = None) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps), as kohya counts them."""
    per_epoch = math.ceil(math.ceil(batches_per_epoch / world) / ga)
    total = per_epoch * epochs
    return per_epoch, min(total, max_steps) if max_steps else total
