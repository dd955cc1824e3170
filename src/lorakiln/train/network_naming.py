"""kohya LoRA module names -> modules, for SD1.5 and SDXL components.

Rules (kohya-ss/sd-scripts networks/lora.py; reference/eval-merge-formats.md §3.1):
- U-Net targets: Linear and 1x1 Conv2d inside Transformer2DModel (proj_in, proj_out, attn1/attn2
  to_q/to_k/to_v/to_out.0, ff.net.0.proj, ff.net.2); with conv adapters (LoCon) also every
  Linear/Conv2d inside ResnetBlock2D, Downsample2D and Upsample2D.
- SD1.5 names use the diffusers module path (`lora_unet_down_blocks_0_attentions_0_...`),
  SDXL names the original SGM path (`lora_unet_input_blocks_4_1_...`).
- Text encoders: q/k/v/out_proj of each CLIP attention and fc1/fc2 of each CLIP MLP, named
  `<prefix>_text_model_encoder_layers_<i>_<self_attn_q_proj|mlp_fc1|...>` with prefix lora_te
  (SD1.5) or lora_te1 / lora_te2 (SDXL). Built from an explicit table, not from class names
  (kohya PR #1964: a class rename silently dropped the attention modules).
"""

from __future__ import annotations

from torch import nn

from lorakiln.formats.keymap import UNetLayout, unet_to_ldm

UNET_PREFIX = "lora_unet"
TE_SUBMODULES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                 "mlp.fc1", "mlp.fc2")


def _block_kinds(conv: bool) -> tuple[type, ...]:
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    return (Transformer2DModel, ResnetBlock2D, Downsample2D, Upsample2D) if conv else (Transformer2DModel,)


def unet_targets(unet: nn.Module, conv: bool) -> dict[str, nn.Module]:
    """diffusers module path -> Linear/Conv2d to adapt, in module order."""
    kinds = _block_kinds(conv)
    out: dict[str, nn.Module] = {}
    for name, block in unet.named_modules():
        if not isinstance(block, kinds):
            continue
        for child_name, child in block.named_modules():
            if isinstance(child, (nn.Linear, nn.Conv2d)):
                out[f"{name}.{child_name}"] = child
    return out


def unet_lora_names(arch: str, unet: nn.Module, conv: bool) -> dict[str, nn.Module]:
    """kohya name -> module for the U-Net of family arch 'sd15' or 'sdxl'."""
    layout = UNetLayout.from_config(unet.config) if arch == "sdxl" else None
    out = {}
    for path, module in unet_targets(unet, conv).items():
        kohya_path = unet_to_ldm(path, layout) if layout is not None else path
        out[f"{UNET_PREFIX}_{kohya_path.replace('.', '_')}"] = module
    return out


def te_lora_names(encoder: nn.Module, prefix: str) -> dict[str, nn.Module]:
    """kohya name -> module for one CLIP text encoder (flattened or wrapped transformers layout)."""
    text_model = getattr(encoder, "text_model", encoder)
    out = {}
    for i, layer in enumerate(text_model.encoder.layers):
        for sub in TE_SUBMODULES:
            out[f"{prefix}_text_model_encoder_layers_{i}_{sub.replace('.', '_')}"] = layer.get_submodule(sub)
    return out


def te_prefixes(n_encoders: int) -> list[str]:
    return ["lora_te"] if n_encoders == 1 else [f"lora_te{i + 1}" for i in range(n_encoders)]


def lora_targets(arch: str, comps, *, conv: bool, text_encoder: bool) -> dict[str, nn.Module]:
    """All targets of a family's components: text encoder(s) first (kohya's order), then the U-Net."""
    out: dict[str, nn.Module] = {}
    if text_encoder:
        for prefix, te in zip(te_prefixes(len(comps.text_encoders)), comps.text_encoders):
            out.update(te_lora_names(te, prefix))
    out.update(unet_lora_names(arch, comps.unet, conv))
    return out


def is_conv3x3(module: nn.Module) -> bool:
    """Modules that take the conv rank (conv_dim) instead of the linear rank (network_dim)."""
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) != (1, 1)


def part_of(name: str) -> str:
    """'unet', 'te', 'te1' or 'te2' for a kohya module name."""
    head = name.split("_")[1]
    return "unet" if head == "unet" else head
