"""The contract between the model-agnostic training loop and a model family.

A family knows how to load its components, turn captions into conditioning, turn pixels
into latents, run the denoiser, and name its LoRA target modules the way kohya does.
Everything else (data, optimiser, loop, saving) is shared and lives outside families/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from lorakiln.core.registry import Registry


@dataclass
class Components:
    """Loaded model parts. `text_encoders`/`tokenizers` are in kohya order (te1, te2)."""

    family: str
    unet: nn.Module
    vae: nn.Module
    text_encoders: list[nn.Module]
    tokenizers: list[Any]
    noise_scheduler: Any  # diffusers DDPMScheduler configured like the base model
    prediction_type: str = "epsilon"  # or "v_prediction"
    source: dict[str, Any] = field(default_factory=dict)  # name, sha256, legacy hash of the base file


@dataclass
class Conditioning:
    """What the denoiser needs besides latents and timesteps (SDXL adds pooled + size ids)."""

    hidden_states: torch.Tensor
    pooled: torch.Tensor | None = None
    time_ids: torch.Tensor | None = None

    def to(self, device, dtype=None) -> "Conditioning":
        mv = lambda t: None if t is None else t.to(device=device, dtype=dtype or t.dtype)  # noqa: E731
        return Conditioning(mv(self.hidden_states), mv(self.pooled), mv(self.time_ids))


class Family(Protocol):
    name: str  # registry name: sd15, sdxl, tiny-sd15, tiny-sdxl
    arch: str  # "sd15" or "sdxl": key naming, metadata, bucket steps
    default_resolution: int

    def load(self, base: str, *, dtype: torch.dtype, vae: str | None = None,
             allow_pickle: bool = False, vae_dtype: torch.dtype | None = None) -> Components: ...

    def build_empty(self, device: str = "meta") -> Components:
        """The full architecture without weights (for `kiln lora keys` and shape checks)."""

    def encode_prompts(self, comps: Components, captions: list[str], *, clip_skip: int = 1,
                       max_token_length: int = 75, sizes: list[tuple] | None = None) -> Conditioning: ...

    def encode_latents(self, comps: Components, pixels: torch.Tensor, *, sample: bool = True,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """pixels in [-1, 1], NCHW -> float32 latents x the VAE's scaling factor (mode() when not `sample`)."""

    def predict(self, comps: Components, latents: torch.Tensor, timesteps: torch.Tensor,
                cond: Conditioning) -> torch.Tensor: ...

    def lora_targets(self, comps: Components, *, conv: bool, text_encoder: bool) -> dict[str, nn.Module]:
        """kohya LoRA name -> module to adapt (lora_unet_..., lora_te_/lora_te1_/lora_te2_...)."""

    def pipeline(self, comps: Components, sampler_name: str = "euler_a") -> Any:
        """A diffusers pipeline over these components for sampling (no downloads, no safety checker)."""

    def metadata(self, comps: Components | None = None, *, clip_skip: int | None = None) -> dict[str, str]:
        """Base-model keys of a LoRA's metadata: ss_base_model_version, ss_v2, modelspec.*."""


FAMILIES: Registry[Family] = Registry("model family")
