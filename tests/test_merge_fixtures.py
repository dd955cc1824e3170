"""Helpers (no tests): tiny single-file checkpoints made from the real diffusers/transformers
classes at toy size, random kohya LoRAs for their targets, and the same LoRA applied in
the diffusers model — the independent reference for bake and extract."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from lorakiln.formats.keymap import UNetLayout, state_dict_to_ldm
from lorakiln.formats.lora_file import write_lora


@functools.lru_cache(maxsize=None)
def _components(family: str):
    from lorakiln.train.families import FAMILIES

    fam = FAMILIES.get(family)
    comps = fam.build_random(7, torch.float32)
    return fam, comps


def components(family: str):
    """A fresh copy of the tiny family's components (cached build) and its kohya targets."""
    fam, comps = _components(family)
    comps = copy.deepcopy(comps)
    return comps, fam.lora_targets(comps, conv=True, text_encoder=True)


def to_checkpoint(comps, arch: str, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    layout = UNetLayout.from_config(comps.unet.config)
    sd = state_dict_to_ldm(arch, comps.unet.state_dict(), comps.vae.state_dict(),
                           [te.state_dict() for te in comps.text_encoders], layout, len(comps.vae.config.block_out_channels))
    return {k: v.detach().to(dtype).contiguous().clone() for k, v in sd.items()}


def save_checkpoint(path: Path, sd: dict[str, torch.Tensor], metadata: dict | None = None) -> Path:
    save_file(sd, str(path), metadata=metadata or {"modelspec.title": "tiny"})
    return path


def random_lora(targets: dict[str, nn.Module], rank: int = 2, alpha: float = 1.0, seed: int = 0,
                only: str | None = None, scale: float = 0.1) -> dict[str, torch.Tensor]:
    """A kohya LoRA for every target (Linear and Conv2d, 3x3 LoCon included)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for name, mod in targets.items():
        if only and not name.startswith(only):
            continue
        w = mod.weight
        out_f, in_f, *k = w.shape
        r = min(rank, out_f, in_f)
        sd[f"{name}.lora_down.weight"] = torch.randn(r, in_f, *k, generator=g) * scale
        sd[f"{name}.lora_up.weight"] = torch.randn(out_f, r, *([1] * len(k)), generator=g) * scale
        sd[f"{name}.alpha"] = torch.tensor(float(alpha))
    return sd


def lora_delta(sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    up, down = sd[f"{name}.lora_up.weight"], sd[f"{name}.lora_down.weight"]
    r = down.shape[0]
    d = (up.reshape(up.shape[0], r) @ down.reshape(r, -1)) * (float(sd[f"{name}.alpha"]) / r)
    return d.reshape(up.shape[0], *down.shape[1:])


@torch.no_grad()
def apply_in_model(targets: dict[str, nn.Module], sd: dict[str, torch.Tensor], weight: float) -> None:
    names = {k.split(".")[0] for k in sd}
    for name in names:
        targets[name].weight += weight * lora_delta(sd, name).reshape(targets[name].weight.shape)


def save_lora(path: Path, sd: dict[str, torch.Tensor], arch: str) -> Path:
    meta = {"ss_base_model_version": "sdxl_base_v1-0" if arch == "sdxl" else "sd_v1", "ss_network_dim": "2"}
    write_lora(path, sd, meta)
    return path
