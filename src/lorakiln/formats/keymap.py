"""Diffusers <-> original LDM/SGM names for SD1.5 and SDXL checkpoints (pure string/tensor maps).

Used for kohya's SDXL LoRA names (SGM `input_blocks/middle_block/output_blocks`), for writing
single-file checkpoints, and for baking a LoRA into one. Everything works on names, given
the U-Net's block layout (`UNetLayout.from_config(unet.config)`); nothing loads a model.

Functions:
- `unet_to_ldm(path, layout)`: a diffusers U-Net module path or state-dict key -> the LDM/SGM one
  (no "model.diffusion_model." prefix), e.g. down_blocks.1.attentions.0.proj_in -> input_blocks.4.1.proj_in,
  down_blocks.0.resnets.0.conv1.weight -> input_blocks.1.0.in_layers.2.weight.
- `vae_to_ldm(key)`: a diffusers AutoencoderKL key -> LDM VAE key (no "first_stage_model." prefix);
  `vae_value_to_ldm(key, tensor)` reshapes the mid-block attention's linear weights to 1x1 convs.
- `clip_to_ldm(key, prefix)`: a transformers CLIPTextModel key (with or without "text_model.") -> the
  single-file key under `prefix` (SD1 "cond_stage_model.transformer.", SDXL te1
  "conditioner.embedders.0.transformer.").
- `openclip_to_ldm(key)`: a CLIPTextModelWithProjection key (SDXL te2) -> (OpenCLIP key, slice):
  q/k/v projections live as row blocks [0:w], [w:2w], [2w:3w] of the fused `attn.in_proj_*`,
  so the slice says which rows; None = the whole tensor. `text_projection` is stored transposed.
- `state_dict_to_ldm(arch, unet_sd, vae_sd, te_sds, layout)`: whole single-file checkpoints.
- `CHECKPOINT_PREFIX`: where each component lives in an SD1.5 / SDXL single file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch

CHECKPOINT_PREFIX = {
    "sd15": {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
             "te": ["cond_stage_model.transformer."]},
    "sdxl": {"unet": "model.diffusion_model.", "vae": "first_stage_model.",
             "te": ["conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."]},
}


@dataclass(frozen=True)
class UNetLayout:
    """What the index arithmetic needs: resnets per level and which up levels have attention."""

    layers_per_block: int
    down_attn: tuple[bool, ...]
    up_attn: tuple[bool, ...]

    @classmethod
    def from_config(cls, cfg: Mapping) -> "UNetLayout":
        lpb = cfg["layers_per_block"]
        if not isinstance(lpb, int):
            raise ValueError("per-level layers_per_block is not supported")
        return cls(lpb, tuple("CrossAttn" in t for t in cfg["down_block_types"]),
                   tuple("CrossAttn" in t for t in cfg["up_block_types"]))


_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_UNET_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "add_embedding.linear_1": "label_emb.0.0",
             "add_embedding.linear_2": "label_emb.0.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
_MID = {"resnets.0": "middle_block.0", "attentions.0": "middle_block.1", "resnets.1": "middle_block.2"}


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _resnet_rest(rest: list[str]) -> str:
    if not rest:
        return ""
    return _join(_RESNET.get(rest[0], rest[0]), *rest[1:])


def unet_to_ldm(path: str, layout: UNetLayout) -> str:
    """diffusers U-Net module path / key -> LDM/SGM module path / key."""
    for d, ldm in _UNET_TOP.items():
        if path == d or path.startswith(d + "."):
            return ldm + path[len(d):]
    parts = path.split(".")
    head = parts[0]
    if head == "mid_block":
        block = _MID[".".join(parts[1:3])]
        rest = parts[3:]
        return _join(block, _resnet_rest(rest) if parts[1] == "resnets" else ".".join(rest))
    if head not in ("down_blocks", "up_blocks") or len(parts) < 4:
        raise KeyError(f"no LDM name for U-Net module {path!r}")
    level, kind, j, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
    n = layout.layers_per_block + 1
    if head == "down_blocks":
        if kind == "resnets":
            return _join(f"input_blocks.{1 + level * n + j}.0", _resnet_rest(rest))
        if kind == "attentions":
            return _join(f"input_blocks.{1 + level * n + j}.1", *rest)
        if kind == "downsamplers":  # Downsample2D.conv -> op
            return _join(f"input_blocks.{(level + 1) * n}.0", "op" if rest else "", *rest[1:])
    else:
        if kind == "resnets":
            return _join(f"output_blocks.{level * n + j}.0", _resnet_rest(rest))
        if kind == "attentions":
            return _join(f"output_blocks.{level * n + j}.1", *rest)
        if kind == "upsamplers":
            slot = 2 if layout.up_attn[level] else 1
            return _join(f"output_blocks.{level * n + n - 1}.{slot}", *rest)
    raise KeyError(f"no LDM name for U-Net module {path!r}")


# -- VAE ------------------------------------------------------------------------------------

_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(key: str, n_levels: int = 4) -> str:
    """diffusers AutoencoderKL key -> LDM key (decoder up blocks are numbered in reverse)."""
    parts = key.split(".")
    side = parts[0]
    if side not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    rest = parts[1:]
    if rest[0] == "conv_norm_out":
        return _join(side, "norm_out", *rest[1:])
    if rest[0] == "mid_block":
        if rest[1] == "attentions":
            inner = ".".join(rest[3:])
            for d, ldm in _VAE_ATTN.items():
                if inner.startswith(d + "."):
                    inner = ldm + inner[len(d):]
                    break
            return _join(side, "mid.attn_1", inner)
        block = f"block_{int(rest[2]) + 1}"
        return _join(side, "mid", block, *[_VAE_RESNET.get(p, p) for p in rest[3:]])
    if rest[0] in ("down_blocks", "up_blocks"):
        i = int(rest[1])
        level = i if rest[0] == "down_blocks" else n_levels - 1 - i
        where = "down" if rest[0] == "down_blocks" else "up"
        if rest[2] == "resnets":
            return _join(side, f"{where}.{level}.block.{rest[3]}", *[_VAE_RESNET.get(p, p) for p in rest[4:]])
        sampler = "downsample" if rest[2] == "downsamplers" else "upsample"
        return _join(side, f"{where}.{level}.{sampler}", *rest[4:])
    return key  # conv_in, conv_out


def vae_value_to_ldm(key: str, value: torch.Tensor) -> torch.Tensor:
    """LDM's VAE attention uses 1x1 convs where diffusers uses linears."""
    if ".mid_block.attentions." in key and key.endswith(".weight") and value.ndim == 2:
        return value[:, :, None, None]
    return value


# -- text encoders ----------------------------------------------------------------------------

def _strip_text_model(key: str) -> str:
    return key[len("text_model."):] if key.startswith("text_model.") else key


def clip_to_ldm(key: str, prefix: str) -> str:
    """transformers CLIPTextModel key -> single-file key (HF layout kept under `prefix`text_model.)."""
    return f"{prefix}text_model.{_strip_text_model(key)}"


_OPENCLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}
_QKV = {"q_proj": 0, "k_proj": 1, "v_proj": 2}


def openclip_to_ldm(key: str, width: int) -> tuple[str, slice | None]:
    """CLIPTextModelWithProjection key -> (OpenCLIP key without prefix, row slice of a fused tensor)."""
    k = _strip_text_model(key)
    fixed = {"embeddings.token_embedding.weight": "token_embedding.weight",
             "embeddings.position_embedding.weight": "positional_embedding",
             "final_layer_norm.weight": "ln_final.weight", "final_layer_norm.bias": "ln_final.bias",
             "text_projection.weight": "text_projection"}
    if k in fixed:
        return fixed[k], None
    parts = k.split(".")
    if parts[:2] != ["encoder", "layers"]:
        raise KeyError(f"no OpenCLIP name for text-encoder key {key!r}")
    i, inner = parts[2], ".".join(parts[3:])
    base = f"transformer.resblocks.{i}"
    if parts[3] == "self_attn" and parts[4] in _QKV:
        r = _QKV[parts[4]]
        return f"{base}.attn.in_proj_{parts[5]}", slice(r * width, (r + 1) * width)
    for d, oc in _OPENCLIP_LAYER.items():
        if inner.startswith(d + "."):
            return f"{base}.{oc}{inner[len(d):]}", None
    raise KeyError(f"no OpenCLIP name for text-encoder key {key!r}")


def openclip_state_dict(sd: Mapping[str, torch.Tensor], width: int) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection state dict -> OpenCLIP tensors (q/k/v fused, projection transposed)."""
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, list] = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue
        name, rows = openclip_to_ldm(key, width)
        if rows is None:
            out[name] = value.T.contiguous() if name == "text_projection" else value
        else:
            fused.setdefault(name, [None, None, None])[rows.start // width] = value
    for name, parts in fused.items():
        out[name] = torch.cat(parts, dim=0)
    out.setdefault("logit_scale", torch.tensor(math.log(1 / 0.07)))
    return out


# -- whole checkpoints --------------------------------------------------------------------------

def state_dict_to_ldm(arch: str, unet_sd: Mapping[str, torch.Tensor], vae_sd: Mapping[str, torch.Tensor],
                      te_sds: list[Mapping[str, torch.Tensor]], layout: UNetLayout,
                      vae_levels: int = 4) -> dict[str, torch.Tensor]:
    """diffusers component state dicts -> one SD1.5 / SDXL single-file state dict."""
    pre = CHECKPOINT_PREFIX[arch]
    out = {pre["unet"] + unet_to_ldm(k, layout): v for k, v in unet_sd.items()}
    out.update({pre["vae"] + vae_to_ldm(k, vae_levels): vae_value_to_ldm(k, v) for k, v in vae_sd.items()})
    out.update({clip_to_ldm(k, pre["te"][0]): v for k, v in te_sds[0].items() if not k.endswith("position_ids")})
    if arch == "sdxl":
        width = te_sds[1]["text_model.final_layer_norm.weight" if "text_model.final_layer_norm.weight" in te_sds[1]
                          else "final_layer_norm.weight"].shape[0]
        out.update({pre["te"][1] + k: v for k, v in openclip_state_dict(te_sds[1], width).items()})
    return out
