"""Which images go into which step, and their pixels.

An epoch's batches are a pure function of (datasets, seed, epoch): every training image
appears `num_repeats` times, regularisation images fill as many samples as the training images
(kohya's rule), samples are grouped by bucket, shuffled, cut into batches, and the batches of all
datasets are shuffled together. A resumed run recomputes the same list and skips what it did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from lorakiln.dataset.decode import load_rgb
from lorakiln.train.buckets import cover_size, crop_offset, resample_filter


@dataclass(frozen=True)
class Ref:
    dataset: int
    item: int


@dataclass(frozen=True)
class Batch:
    dataset: int
    bucket: tuple[int, int]
    refs: tuple[Ref, ...]


def samples_per_epoch(scanned) -> tuple[list[int], list[int]]:
    """(training sample indices with repeats, regularisation indices with repeats) of one dataset."""
    train, reg = [], []
    for i, it in enumerate(scanned.items):
        sub = scanned.spec.subsets[it.subset]
        (reg if sub.is_reg else train).extend([i] * sub.num_repeats)
    return train, reg


def _reg_fill(reg: list[int], n: int, epoch: int) -> list[int]:
    """n regularisation samples, cycling the pool; the start moves each epoch so all get used."""
    if not reg or n == 0:
        return []
    start = ((epoch - 1) * n) % len(reg)
    return [reg[(start + k) % len(reg)] for k in range(n)]


def epoch_batches(datasets: list, seed: int, epoch: int) -> list[Batch]:
    """All batches of one epoch (1-based), deterministic in (seed, epoch)."""
    rng = random.Random(f"batches:{seed}:{epoch}")
    batches: list[Batch] = []
    for d, scanned in enumerate(datasets):
        train, reg = samples_per_epoch(scanned)
        by_bucket: dict[tuple[int, int], list[int]] = {}
        for i in train + _reg_fill(reg, len(train), epoch):
            by_bucket.setdefault(scanned.items[i].bucket, []).append(i)
        bs = scanned.spec.batch_size
        for bucket in sorted(by_bucket):
            idx = by_bucket[bucket]
            rng.shuffle(idx)
            for k in range(0, len(idx), bs):
                batches.append(Batch(d, bucket, tuple(Ref(d, i) for i in idx[k:k + bs])))
    rng.shuffle(batches)
    return batches


def batches_per_epoch(datasets: list) -> int:
    """kohya's ss_num_batches_per_epoch: sum over buckets of ceil(samples / batch size)."""
    return len(epoch_batches(datasets, 0, 1))


def item_rng(seed: int, epoch: int, step: int, slot: int) -> random.Random:
    """The RNG for one sample's caption and augmentation (independent of resume points)."""
    return random.Random(f"item:{seed}:{epoch}:{step}:{slot}")


def hue_shift(img: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by `shift` (a fraction of the colour wheel); kohya's colour augmentation."""
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


@dataclass(frozen=True)
class Prepared:
    pixels: torch.Tensor  # 3xHxW in [-1, 1]
    original_size: tuple[int, int]  # (w, h) of the source image
    crop_top_left: tuple[int, int]  # (top, left) in resized coordinates, for SDXL conditioning


def prepare_image(img: Image.Image, bucket: tuple[int, int], *, interpolation: str = "auto",
                  rng: random.Random | None = None, flip: bool = False, hue: float = 0.0) -> Prepared:
    """Resize to cover the bucket, crop (centred, or random with `rng`), flip, shift hue."""
    size = img.size
    target = cover_size(size, bucket)
    if target != size:
        img = img.resize(target, resample_filter(size, target, interpolation))
    left, top = crop_offset(target, bucket, rng)
    img = img.crop((left, top, left + bucket[0], top + bucket[1]))
    if flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if hue:
        img = hue_shift(img, hue)
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return Prepared(arr.float().div(127.5).sub(1.0), size, (top, left))


@dataclass(frozen=True)
class Augment:
    flip: bool = False
    crop_rng: random.Random | None = None  # None = centre crop
    hue: float = 0.0


def choose_augment(opts, rng: random.Random | None, cached: bool = False) -> Augment:
    """This sample's augmentation; cached latents allow only the flip (both versions are cached)."""
    if rng is None:
        return Augment()
    flip = bool(opts.flip_aug and rng.random() < 0.5)
    if cached:
        return Augment(flip)
    hue = rng.uniform(-0.05, 0.05) if opts.color_aug else 0.0
    return Augment(flip, rng if opts.random_crop else None, hue)


def load_item(item, bucket, aug: Augment, interpolation: str = "auto") -> Prepared:
    """Pixels of one sample with its augmentation."""
    return prepare_image(load_rgb(item.path), bucket, interpolation=interpolation, rng=aug.crop_rng,
                         flip=aug.flip, hue=aug.hue)
