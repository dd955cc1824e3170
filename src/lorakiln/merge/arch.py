"""Which base model a LoRA is for: from its tensors first (decisive), then its metadata.

Shapes decide: the cross-attention key projection's input width is the text-embedding width
(768 SD1.x, 1024 SD2.x, 2048 SDXL) — the rule InvokeAI's probe uses. Names come next (lora_te1/
lora_te2 and SGM block names are SDXL), then metadata (ss_base_model_version,
modelspec.architecture), and last diffusers-style names (lora_unet_down_blocks, lora_te_), which
SD1.5 uses but diffusers-converted SDXL LoRAs use too.
"""

from __future__ import annotations

import re

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModel

ARCHS = ("sd15", "sd2", "sdxl")
_CONTEXT_WIDTH = {768: "sd15", 1024: "sd2", 2048: "sdxl"}
_SDXL_NAMES = re.compile(r"^(lora_te[12]_|lora_unet_(input_blocks|middle_block|output_blocks)_)")
_SD_NAMES = re.compile(r"^(lora_te_|lora_unet_(down_blocks|mid_block|up_blocks)_)")


def arch_from_metadata(metadata: dict[str, str]) -> str | None:
    version = metadata.get("ss_base_model_version", "")
    spec = metadata.get("modelspec.architecture", "")
    if version.startswith("sdxl") or spec.startswith("stable-diffusion-xl"):
        return "sdxl"
    if version.startswith("sd_v2") or spec.startswith("stable-diffusion-v2"):
        return "sd2"
    if version.startswith("sd_v1") or spec.startswith("stable-diffusion-v1"):
        return "sd15"
    return None


def arch_from_tensors(model: LoraModel, weak: bool = True) -> str | None:
    """From shapes (decisive), then SGM / te1 / te2 names (SDXL only). With `weak`, diffusers-style
    U-Net names or lora_te_ count as SD1.5 — weak because diffusers' kohya conversion writes
    SDXL LoRAs with those names too."""
    for name, m in model.modules.items():
        if name.endswith("attn2_to_k") and name.startswith("lora_unet_"):
            found = _CONTEXT_WIDTH.get(int(m.shape[1]))
            if found:
                return found
    names = list(model.modules)
    if any(_SDXL_NAMES.match(n) for n in names):
        return "sdxl"
    if weak and any(_SD_NAMES.match(n) for n in names):
        return "sd15"
    return None


def detect_arch(model: LoraModel, metadata: dict[str, str]) -> str:
    """'sd15', 'sd2', 'sdxl' or 'unknown': shapes and SDXL names, then metadata, then SD1.5 names."""
    return (arch_from_tensors(model, weak=False) or arch_from_metadata(metadata)
            or arch_from_tensors(model) or "unknown")


def check_same_arch(named: list[tuple[str, LoraModel, dict[str, str]]]) -> str:
    """Refuse inputs for different architectures; returns the common one ('unknown' if none
    says). An input sharing no module with the others is refused too (modules present in only
    some inputs are fine)."""
    archs = [detect_arch(model, meta) for _, model, meta in named]
    known = {a for a in archs if a != "unknown"}
    if len(known) > 1:
        listing = ", ".join(f"{n} is {a}" for (n, _, _), a in zip(named, archs))
        raise KilnError(f"these LoRAs are for different base models ({listing}); they cannot be merged")
    if len(named) > 1:
        for i, (name, model, _) in enumerate(named):
            others = set().union(*(set(m.modules) for j, (_, m, _) in enumerate(named) if j != i))
            if model.modules and not (set(model.modules) & others):
                raise KilnError(f"{name} shares no module with the other inputs; "
                                "it is for a different architecture or naming scheme")
    return known.pop() if known else "unknown"
