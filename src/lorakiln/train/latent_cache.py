"""Latent caching: each image is VAE-encoded once, in memory or on disk (cache/latents/).

A cached latent is keyed by what determines it: the image file's SHA-256, the bucket size,
the flip, the resize filter, and the VAE's identity (family, base, VAE weights fingerprint,
dtype). Changing any of these misses the cache; nothing stale is ever reused. Disk entries are
safetensors files written atomically, so a kill leaves whole entries only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lorakiln.core.atomic import write_bytes
from lorakiln.core.hashing import text_hash


def weights_fingerprint(module: torch.nn.Module, n: int = 3, head: int = 4096) -> str:
    """A cheap identity of a module's weights: the first values of its first and last tensors."""
    params = list(module.state_dict().values())
    h = hashlib.sha256()
    for t in params[:n] + params[-n:]:
        flat = t.detach().reshape(-1)[:head].float().cpu()
        h.update(str(tuple(t.shape)).encode())
        h.update(flat.numpy().tobytes())
    return h.hexdigest()[:16]


def vae_identity(family: str, source: dict, vae: torch.nn.Module) -> str:
    dtype = str(next(vae.parameters()).dtype)
    src = {k: v for k, v in source.items() if k != "path"}  # never an absolute path
    return text_hash(json.dumps({"family": family, "source": src, "dtype": dtype,
                                 "weights": weights_fingerprint(vae)}, sort_keys=True))


def latent_key(image_sha256: str, bucket: tuple[int, int], flip: bool, interpolation: str) -> str:
    return text_hash(f"{image_sha256}:{bucket[0]}x{bucket[1]}:{int(flip)}:{interpolation}", 32)


class LatentCache:
    """Memory (and optionally disk) store of latents for one VAE identity."""

    def __init__(self, vae_id: str, disk_dir: Path | None = None):
        self.vae_id = vae_id
        self.disk = Path(disk_dir) / vae_id if disk_dir is not None else None
        self.memory: dict[str, torch.Tensor] = {}
        self.hits = 0  # found in memory or on disk
        self.misses = 0  # had to be encoded

    def _file(self, key: str) -> Path:
        return self.disk / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> torch.Tensor | None:
        t = self.memory.get(key)
        if t is None and self.disk is not None and self._file(key).is_file():
            try:
                t = st_load(self._file(key).read_bytes())["latent"]
            except Exception:  # noqa: BLE001 - a damaged entry is recomputed
                t = None
            if t is not None:
                self.memory[key] = t
        return t

    def put(self, key: str, latent: torch.Tensor) -> None:
        latent = latent.detach().to("cpu", torch.float32).contiguous()
        self.memory[key] = latent
        if self.disk is not None:
            write_bytes(self._file(key), st_save({"latent": latent}))

    def fill(self, jobs: list[tuple[str, Callable[[], torch.Tensor]]], encode: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int = 1, on_done: Callable[[int], None] | None = None,
             on_error: Callable[[str, Exception], None] | None = None) -> None:
        """Encode every (key, pixel loader) job not cached yet, `batch_size` images per VAE call.

        Pixel loaders of one call must give the same shape (same bucket); a loader that raises
        is reported through `on_error` and skipped.
        """
        pending: list[tuple[str, torch.Tensor]] = []

        def flush() -> None:
            if pending:
                z = encode(torch.stack([p for _, p in pending]))
                for (k, _), lat in zip(pending, z):
                    self.put(k, lat)
                if on_done:
                    on_done(len(pending))
                pending.clear()

        for key, load in jobs:
            if self.get(key) is not None:
                self.hits += 1
                if on_done:
                    on_done(1)
                continue
            try:
                pixels = load()
            except Exception as e:  # noqa: BLE001 - one bad image never stops the batch
                if on_error:
                    on_error(key, e)
                continue
            self.misses += 1
            if pending and pending[0][1].shape != pixels.shape:
                flush()
            pending.append((key, pixels))
            if len(pending) >= batch_size:
                flush()
        flush()
