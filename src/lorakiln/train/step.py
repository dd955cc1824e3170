"""One training step's work, shared by the loop and bench/train_step.py.

`assemble` turns a Batch into latents + conditioning (captions processed, augmentation drawn,
latents from the cache or the VAE, text from the cache or the encoders); `diffusion_step_loss`
noises the latents and returns the weighted loss. Randomness comes from generators seeded by
(seed, epoch, batch, slot), so a resumed run draws exactly what the uninterrupted one drew.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from lorakiln.train.batches import Augment, Batch, choose_augment, item_rng, load_item
from lorakiln.train.buckets import cover_size, crop_offset
from lorakiln.train.caption_proc import process_caption
from lorakiln.train.latent_cache import LatentCache, latent_key
from lorakiln.train.losses import NoiseSchedule, diffusion_loss, make_noise, sample_timesteps


def seed_from(*parts: Any) -> int:
    """A 63-bit seed from any parts, stable across processes and Python runs."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


@dataclass
class StepSetup:
    """Everything assemble() needs that stays fixed during a run."""

    family: Any
    comps: Any
    datasets: list  # ScannedDataset with buckets assigned
    device: torch.device
    seed: int
    clip_skip: int = 1
    max_token_length: int = 75
    interpolation: str = "auto"
    prior_loss_weight: float = 1.0
    latent_cache: LatentCache | None = None
    te_cache: Any = None  # TextEncoderCache or None
    train_text_encoder: bool = False
    counters: dict = field(default_factory=lambda: {"images": 0})


@dataclass
class StepInputs:
    latents: torch.Tensor
    cond: Any  # Conditioning
    sample_weights: torch.Tensor
    captions: list[str]


def cache_key(item, bucket, flip: bool, interpolation: str) -> str:
    return latent_key(item.sha256, bucket, flip, interpolation)


def encode_pixels(setup: StepSetup, pixels: torch.Tensor) -> torch.Tensor:
    """VAE latents (deterministic: the distribution's mode, so cached and fresh latents agree)."""
    return setup.family.encode_latents(setup.comps, pixels.to(setup.device), sample=False)


def _size_row(original: tuple[int, int], crop_tl: tuple[int, int], bucket: tuple[int, int]) -> tuple:
    """SDXL size conditioning: (orig_h, orig_w, crop_top, crop_left, target_h, target_w)."""
    return (original[1], original[0], crop_tl[0], crop_tl[1], bucket[1], bucket[0])


def assemble(setup: StepSetup, batch: Batch, epoch: int, index: int) -> StepInputs:
    """Latents, conditioning and per-sample weights of one batch (`index` = batch number in the epoch)."""
    scanned = setup.datasets[batch.dataset]
    captions, sizes, latents, weights = [], [], [], []
    cached = setup.latent_cache is not None
    for slot, ref in enumerate(batch.refs):
        item = scanned.items[ref.item]
        sub = scanned.spec.subsets[item.subset]
        rng = item_rng(setup.seed, epoch, index, slot)
        captions.append(process_caption(item.caption, sub.options, rng, epoch))
        aug: Augment = choose_augment(sub.options, rng, cached)
        if cached:
            z = setup.latent_cache.get(cache_key(item, batch.bucket, aug.flip, setup.interpolation))
            latents.append(z)
            crop = crop_offset(cover_size(item.size, batch.bucket), batch.bucket)
            sizes.append(_size_row(item.size, (crop[1], crop[0]), batch.bucket))
        else:
            prep = load_item(item, batch.bucket, aug, setup.interpolation)
            latents.append(prep.pixels)
            sizes.append(_size_row(prep.original_size, prep.crop_top_left, batch.bucket))
        weights.append(setup.prior_loss_weight if sub.is_reg else 1.0)
    stacked = torch.stack(latents)
    z = stacked.to(setup.device) if cached else encode_pixels(setup, stacked)
    setup.counters["images"] += len(batch.refs)
    return StepInputs(z, encode_text(setup, captions, sizes), torch.tensor(weights), captions)


def encode_text(setup: StepSetup, captions: list[str], sizes: list[tuple]):
    if setup.te_cache is not None:
        return setup.te_cache(captions, sizes).to(setup.device)
    grad = torch.enable_grad() if setup.train_text_encoder else torch.no_grad()
    with grad:
        return setup.family.encode_prompts(setup.comps, captions, clip_skip=setup.clip_skip,
                                           max_token_length=setup.max_token_length, sizes=sizes).to(setup.device)


def diffusion_step_loss(setup: StepSetup, inputs: StepInputs, sched: NoiseSchedule, loss_cfg,
                        gen: torch.Generator, autocast=None) -> torch.Tensor:
    """Noise the latents at random timesteps, predict, and return the weighted loss."""
    z = inputs.latents.float()
    noise = make_noise(tuple(z.shape), gen, loss_cfg).to(z.device)
    hi = min(loss_cfg.max_timestep, sched.num_timesteps)
    t = sample_timesteps(z.shape[0], loss_cfg.min_timestep, hi, gen)
    noisy = sched.add_noise(z, noise, t)
    target = sched.target(z, noise, t)
    with autocast or nullcontext():
        pred = setup.family.predict(setup.comps, noisy, t.to(z.device), inputs.cond)
    return diffusion_loss(pred, target, t, sched, loss_cfg, inputs.sample_weights)
