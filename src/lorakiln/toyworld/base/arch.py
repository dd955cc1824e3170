"""The toy base model's architecture and its single-file checkpoint in the original SD layout.

The real diffusers/transformers classes of SD1.5 at toy size: a 3-level VAE (4x downsampling,
so a 64x64 picture is a 16x16x4 latent and eyes survive), a 3-level U-Net with cross-attention
on its two inner levels, and a 3-layer 64-wide CLIP text encoder over the full CLIP vocabulary
(the bundled BPE tokenizer). The file keeps the configs in its metadata
(`train.families.embedded_config`), so kiln's sd15 single-file loader builds these sizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lorakiln.train.families.loading import config_dir

RESOLUTION = 64

VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
           block_out_channels=[16, 32, 64], down_block_types=["DownEncoderBlock2D"] * 3,
           up_block_types=["UpDecoderBlock2D"] * 3, act_fn="silu", sample_size=RESOLUTION, scaling_factor=1.0)

UNET = dict(sample_size=RESOLUTION // 4, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=[64, 128, 128], norm_num_groups=32, cross_attention_dim=64, attention_head_dim=8,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            act_fn="silu", flip_sin_to_cos=True, freq_shift=0, center_input_sample=False,
            downsample_padding=1, mid_block_scale_factor=1, norm_eps=1e-5)

TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4, projection_dim=64)


def text_config() -> dict[str, Any]:
    cfg = json.loads((config_dir("sd15") / "text_encoder" / "config.json").read_text())
    cfg.update(TEXT)
    return cfg


def build(seed: int = 0, vae_config: dict | None = None):
    """(unet, vae, text_encoder) with seeded random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(**(vae_config or VAE))
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(**UNET)
    torch.manual_seed(seed + 2)
    te = CLIPTextModel(CLIPTextConfig(**text_config()))
    return unet, vae, te


def build_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**VAE)


def _plain(cfg) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(cfg).items()
            if not k.startswith("_") or k == "_class_name"}


def save_single_file(path: Path, unet, vae, te, metadata: dict[str, str] | None = None,
                     dtype: torch.dtype = torch.float16) -> Path:
    """One .safetensors in the original SD layout (model.diffusion_model.*, first_stage_model.*,
    cond_stage_model.transformer.*) with the configs and `metadata` in its header."""
    from safetensors.torch import save_file

    from lorakiln.formats.keymap import UNetLayout, state_dict_to_ldm
    from lorakiln.train.families.embedded_config import metadata_entry

    sd = state_dict_to_ldm("sd15", unet.state_dict(), vae.state_dict(), [te.state_dict()],
                           UNetLayout.from_config(unet.config), len(vae.config.block_out_channels))
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}
    te_cfg = te.config.to_dict()
    te_cfg = {k: v for k, v in te_cfg.items() if k in text_config() or k in ("architectures", "model_type")}
    meta = {**metadata_entry({"unet": {"_class_name": "UNet2DConditionModel", **_plain(unet.config)},
                              "vae": {"_class_name": "AutoencoderKL", **_plain(vae.config)},
                              "text_encoder": te_cfg}),
            "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1",
            "modelspec.implementation": "diffusers", "modelspec.resolution": f"{RESOLUTION}x{RESOLUTION}",
            "modelspec.prediction_type": "epsilon", "modelspec.title": "toy-sd15 (kiln toy world)",
            **(metadata or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_with_kiln(path: Path, dtype: torch.dtype = torch.float32):
    """The file through kiln's own sd15 path: family detection, then the single-file loader."""
    from lorakiln.services.train import pick_family

    fam = pick_family(str(path))
    return fam, fam.load(str(path), dtype=dtype)
