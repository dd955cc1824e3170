"""kohya LoRA module names <-> weights of a single-file SD1.5 / SDXL checkpoint.

Built from the checkpoint's key list alone (no model is loaded):
- SDXL U-Net: kohya names are the SGM paths (`lora_unet_input_blocks_4_1_..`), so the name is
  the key with dots as underscores.
- SD1.5 U-Net: kohya names are diffusers paths (`lora_unet_down_blocks_0_attentions_0_..`);
  the checkpoint is LDM-named, so every diffusers target path is mapped with
  formats.keymap.unet_to_ldm, the block layout read from the checkpoint's own keys.
- Text encoders: SD1.5 `cond_stage_model.transformer.` and SDXL te1
  `conditioner.embedders.0.transformer.` keep the HF CLIP layout; SDXL te2
  `conditioner.embedders.1.model.` is OpenCLIP, q/k/v packed as row blocks of
  `attn.in_proj_weight` (keymap.openclip_to_ldm gives the key and the rows).

Groups follow kohya's targets: "attn" (Transformer2DModel children: proj_in/out, attention,
feed-forward), "conv" (ResnetBlock2D / Downsample2D / Upsample2D children; LoCon), "te".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from lorakiln.core.errors import KilnError
from lorakiln.formats.keymap import CHECKPOINT_PREFIX, UNetLayout, clip_to_ldm, openclip_to_ldm, unet_to_ldm
from lorakiln.formats.safetensors_io import FormatError, Header

UNET = CHECKPOINT_PREFIX["sd15"]["unet"]
_ATTN_CHILDREN = ("proj_in", "proj_out")
_BLOCK_CHILDREN = tuple(f"{a}.{p}" for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out.0")) + \
    ("ff.net.0.proj", "ff.net.2")
_RESNET_CHILDREN = ("conv1", "conv2", "time_emb_proj", "conv_shortcut")
_TE_CHILDREN = tuple(f"self_attn.{p}_proj" for p in ("q", "k", "v", "out")) + ("mlp.fc1", "mlp.fc2")
_SGM_CONV = re.compile(r"\.(in_layers\.2|out_layers\.3|emb_layers\.1|skip_connection|0\.op|\d+\.conv)$")
_SGM_ATTN = re.compile(r"\.\d+\.(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|"
                       r"ff\.net\.0\.proj|ff\.net\.2))$")


@dataclass(frozen=True)
class Target:
    name: str  # kohya module name
    key: str  # checkpoint weight key
    rows: slice | None  # rows of a packed tensor (SDXL te2 q/k/v), else None
    shape: tuple[int, ...]  # the target weight's shape (after slicing rows)
    group: str  # "attn" | "conv" | "te"
    bias_key: str | None = None


def checkpoint_arch(keys) -> str:
    keys = set(keys)
    if any(k.startswith("conditioner.embedders.1.model.transformer.resblocks.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd15"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        raise KilnError("is an SD2.x checkpoint (OpenCLIP text encoder); only SD1.5 and SDXL "
                        "single-file checkpoints are supported")
    if any(k.startswith(UNET) for k in keys):
        raise KilnError("has a U-Net but no text encoder lorakiln recognises "
                        "(cond_stage_model.transformer. or conditioner.embedders.)")
    raise KilnError("is not a single-file SD1.5/SDXL checkpoint (no model.diffusion_model. keys)")


def layout_from_keys(keys) -> UNetLayout:
    """The U-Net block layout of an LDM-named checkpoint, read from which blocks exist."""
    keys = set(keys)
    inputs = {int(k[len(UNET):].split(".")[1]) for k in keys if k.startswith(UNET + "input_blocks.")}
    if not inputs:
        raise KilnError("is a checkpoint with no model.diffusion_model.input_blocks")
    ops = sorted(i for i in inputs if f"{UNET}input_blocks.{i}.0.op.weight" in keys)
    n = ops[0] if ops else max(inputs)  # input_blocks per level + its downsampler
    levels = (max(inputs) + 1) // n

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    down = tuple(has(f"{UNET}input_blocks.{1 + lv * n}.1.") for lv in range(levels))
    up = tuple(has(f"{UNET}output_blocks.{lv * n}.1.proj_in") or has(f"{UNET}output_blocks.{lv * n}.1.transformer_blocks")
               for lv in range(levels))
    return UNetLayout(n - 1, down, up)


def _depth(keys: set[str], ldm_block: str) -> int:
    pat = re.compile(re.escape(UNET + ldm_block) + r"\.transformer_blocks\.(\d+)\.")
    found = [int(m.group(1)) for k in keys if (m := pat.match(k))]
    return max(found) + 1 if found else 0


def _sd15_unet_paths(keys: set[str], lay: UNetLayout) -> Iterator[tuple[str, str]]:
    """(diffusers module path, group) for every possible kohya SD1.5 U-Net target."""
    levels, lpb = len(lay.down_attn), lay.layers_per_block

    def attention(prefix: str) -> Iterator[tuple[str, str]]:
        yield from ((f"{prefix}.{c}", "attn") for c in _ATTN_CHILDREN)
        for t in range(_depth(keys, unet_to_ldm(prefix, lay))):
            yield from ((f"{prefix}.transformer_blocks.{t}.{c}", "attn") for c in _BLOCK_CHILDREN)

    def resnet(prefix: str) -> Iterator[tuple[str, str]]:
        yield from ((f"{prefix}.{c}", "conv") for c in _RESNET_CHILDREN)

    for lv in range(levels):
        for j in range(lpb):
            yield from resnet(f"down_blocks.{lv}.resnets.{j}")
            if lay.down_attn[lv]:
                yield from attention(f"down_blocks.{lv}.attentions.{j}")
        if lv < levels - 1:
            yield f"down_blocks.{lv}.downsamplers.0.conv", "conv"
    yield from resnet("mid_block.resnets.0")
    yield from resnet("mid_block.resnets.1")
    yield from attention("mid_block.attentions.0")
    for lv in range(levels):
        for j in range(lpb + 1):
            yield from resnet(f"up_blocks.{lv}.resnets.{j}")
            if lay.up_attn[lv]:
                yield from attention(f"up_blocks.{lv}.attentions.{j}")
        if lv < levels - 1:
            yield f"up_blocks.{lv}.upsamplers.0.conv", "conv"


def _target(name: str, key: str, header: Header, group: str, rows: slice | None = None) -> Target | None:
    info = header.tensors.get(key)
    if info is None:
        return None
    shape = info.shape if rows is None else (rows.stop - rows.start, *info.shape[1:])
    bias = key[: -len("weight")] + "bias" if key.endswith("weight") else None
    return Target(name, key, rows, tuple(shape), group, bias if bias in header.tensors else None)


def _unet_targets(arch: str, header: Header) -> Iterator[Target]:
    keys = set(header.tensors)
    if arch == "sd15":
        lay = layout_from_keys(keys)
        for path, group in _sd15_unet_paths(keys, lay):
            t = _target("lora_unet_" + path.replace(".", "_"), UNET + unet_to_ldm(path, lay) + ".weight", header, group)
            if t:
                yield t
        return
    for key in sorted(keys):
        if not (key.startswith(UNET) and key.endswith(".weight")):
            continue
        path = key[len(UNET):-len(".weight")]
        group = "attn" if _SGM_ATTN.search("." + path) else "conv" if _SGM_CONV.search("." + path) else None
        if group and (t := _target("lora_unet_" + path.replace(".", "_"), key, header, group)):
            yield t


def _layers(keys: set[str], pattern: str) -> list[int]:
    pat = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := pat.match(k))})


def _clip_targets(prefix: str, lora_prefix: str, header: Header) -> Iterator[Target]:
    keys = set(header.tensors)
    has_text_model = any(k.startswith(prefix + "text_model.") for k in keys)
    inner = re.escape(prefix + ("text_model." if has_text_model else "")) + r"encoder\.layers\.(\d+)\."
    for i in _layers(keys, inner):
        for child in _TE_CHILDREN:
            hf = f"text_model.encoder.layers.{i}.{child}.weight"
            key = clip_to_ldm(hf, prefix) if has_text_model else f"{prefix}encoder.layers.{i}.{child}.weight"
            t = _target(f"{lora_prefix}_text_model_encoder_layers_{i}_{child.replace('.', '_')}", key, header, "te")
            if t:
                yield t


def _openclip_targets(prefix: str, header: Header) -> Iterator[Target]:
    keys = set(header.tensors)
    for i in _layers(keys, re.escape(prefix) + r"transformer\.resblocks\.(\d+)\."):
        packed = header.tensors.get(f"{prefix}transformer.resblocks.{i}.attn.in_proj_weight")
        if packed is None:
            continue
        width = packed.shape[1]
        for child in _TE_CHILDREN:
            ldm, rows = openclip_to_ldm(f"text_model.encoder.layers.{i}.{child}.weight", width)
            t = _target(f"lora_te2_text_model_encoder_layers_{i}_{child.replace('.', '_')}", prefix + ldm, header, "te", rows)
            if t:
                if rows is not None:  # the packed bias is not split per q/k/v here
                    t = Target(t.name, t.key, t.rows, t.shape, t.group, None)
                yield t


def checkpoint_targets(header: Header) -> tuple[str, dict[str, Target]]:
    """(arch, kohya module name -> Target) for every LoRA-able weight of the checkpoint; a file
    that is not a checkpoint lorakiln reads is a FormatError naming it."""
    try:
        return _targets(header)
    except FormatError:
        raise
    except KilnError as e:
        raise FormatError(header.path, f"{e}") from None


def _targets(header: Header) -> tuple[str, dict[str, Target]]:
    arch = checkpoint_arch(header.tensors)
    out = {t.name: t for t in _unet_targets(arch, header)}
    te = CHECKPOINT_PREFIX[arch]["te"]
    if arch == "sd15":
        out.update({t.name: t for t in _clip_targets(te[0], "lora_te", header)})
    else:
        out.update({t.name: t for t in _clip_targets(te[0], "lora_te1", header)})
        out.update({t.name: t for t in _openclip_targets(te[1], header)})
    return arch, out
