"""What SD1.5 and SDXL share: loading, empty/random construction, latents, denoiser call.

Each family subclass (sd15.py, sdxl.py) adds its prompt encoding, its LoRA naming and its
diffusers pipeline; the tiny families (tiny.py) only swap the bundled config folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorakiln.core.errors import ConfigError
from lorakiln.train.families import loading
from lorakiln.train.families.base import Components, Conditioning
from lorakiln.train.families.clip_tokenizer import load_clip_tokenizer


class StableDiffusionFamily:
    """Shared base; subclasses set name, arch, default_resolution, layout and the hooks below."""

    name = ""
    arch = ""
    default_resolution = 512
    layout: loading.Layout

    # -- construction ----------------------------------------------------------------------
    def config_path(self, sub: str = "") -> Path:
        return loading.config_dir(self.layout.config) / sub

    def _configs(self) -> dict[str, Any]:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig

        return {
            "unet": UNet2DConditionModel.load_config(self.config_path("unet")),
            "vae": AutoencoderKL.load_config(self.config_path("vae")),
            "te": [CLIPTextConfig.from_pretrained(self.config_path(sub)) for sub, _ in self.layout.text_encoders],
        }

    def _construct(self, seed: int | None = None) -> tuple[nn.Module, nn.Module, list[nn.Module]]:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        cfg = self._configs()
        seeded = lambda: torch.manual_seed(seed) if seed is not None else None  # noqa: E731
        seeded()
        unet = UNet2DConditionModel.from_config(cfg["unet"])
        seeded()
        vae = AutoencoderKL.from_config(cfg["vae"])
        tes = []
        for (_, cls), te_cfg in zip(self.layout.text_encoders, cfg["te"]):
            seeded()
            tes.append(loading._transformers_class(cls)(te_cfg))
        return unet, vae, tes

    def build_empty(self, device: str = "meta") -> Components:
        """The architecture from the bundled configs, weights on `device` ("meta" = no memory)."""
        with torch.device(device):
            unet, vae, tes = self._construct()
        return self._components(unet, vae, tes, {"name": self.name, "kind": "empty"})

    def build_random(self, seed: int = 0, dtype: torch.dtype = torch.float32) -> Components:
        """Seeded random weights (tests and the tiny families)."""
        unet, vae, tes = self._construct(seed)
        for m in (unet, vae, *tes):
            if dtype != torch.float32:
                m.to(dtype)
            m.eval().requires_grad_(False)
        return self._components(unet, vae, tes, {"name": self.name, "kind": "builtin", "seed": seed})

    def load(self, base: str, *, dtype: torch.dtype = torch.float32, vae: str | None = None,
             allow_pickle: bool = False, vae_dtype: torch.dtype | None = None) -> Components:
        """A base given as single file, diffusers folder or hub id; `vae` replaces the VAE.

        The VAE stays in float32 when its config asks for it (SDXL's VAE overflows in fp16)
        unless `vae_dtype` says otherwise.
        """
        kind = loading.base_kind(base)
        self._check_arch(base, kind, allow_pickle)
        own_vae = vae is None
        if kind == "file":
            parts = loading.load_single_file(Path(base), self.layout, dtype, allow_pickle, with_vae=own_vae)
        else:
            folder = Path(base) if kind == "folder" else loading.hub_folder(str(base))
            parts = loading.load_folder(folder, self.layout, dtype, with_vae=own_vae)
        vdtype = vae_dtype or self._vae_dtype(dtype)
        vae_model = parts["vae"] if own_vae else loading.load_vae(vae, self.layout, vdtype)
        if vae_model.dtype != vdtype:
            vae_model.to(vdtype)
        for m in (parts["unet"], vae_model, *parts["text_encoders"]):
            m.eval().requires_grad_(False)
        source = loading.source_info(base, kind)
        if vae is not None:
            source["vae"] = Path(str(vae)).name
        comps = self._components(parts["unet"], vae_model, parts["text_encoders"], source)
        if parts["v_pred"]:
            comps.prediction_type = "v_prediction"
            comps.noise_scheduler = self._noise_scheduler("v_prediction")
        return comps

    def _check_arch(self, base: str, kind: str, allow_pickle: bool) -> None:
        found = loading.detect_family(base, allow_pickle)
        if found != self.arch:
            raise ConfigError(base, f"is an {found} model, but the family is {self.name}; "
                                    f"set base family to {found} (or leave it unset to detect it)")

    def _vae_dtype(self, dtype: torch.dtype) -> torch.dtype:
        cfg = json.loads(self.config_path("vae/config.json").read_text())
        return torch.float32 if cfg.get("force_upcast") else dtype

    def _noise_scheduler(self, prediction_type: str = "epsilon"):
        from diffusers import DDPMScheduler

        cfg = DDPMScheduler.load_config(self.config_path("scheduler"))
        cfg.pop("_class_name", None)
        return DDPMScheduler.from_config(cfg, clip_sample=False, prediction_type=prediction_type)

    def _components(self, unet, vae, tes, source) -> Components:
        toks = [load_clip_tokenizer(pad) for pad in self.layout.pads]
        return Components(self.name, unet, vae, tes, toks, self._noise_scheduler(), "epsilon", source)

    # -- per step ---------------------------------------------------------------------------
    def encode_latents(self, comps: Components, pixels: torch.Tensor, *, sample: bool = True,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """pixels in [-1, 1] NCHW -> float32 latents x scaling factor (the VAE runs in its own dtype)."""
        vae = comps.vae
        with torch.no_grad():
            dist = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist
            z = dist.sample(generator) if sample else dist.mode()
        return z.float() * vae.config.scaling_factor

    def predict(self, comps: Components, latents: torch.Tensor, timesteps: torch.Tensor,
                cond: Conditioning) -> torch.Tensor:
        unet = comps.unet
        extra = None
        if cond.pooled is not None:
            extra = {"text_embeds": cond.pooled.to(unet.dtype), "time_ids": cond.time_ids.to(unet.dtype)}
        return unet(latents.to(unet.dtype), timesteps, encoder_hidden_states=cond.hidden_states.to(unet.dtype),
                    added_cond_kwargs=extra).sample

    def lora_targets(self, comps: Components, *, conv: bool, text_encoder: bool) -> dict[str, nn.Module]:
        from lorakiln.train import network_naming

        return network_naming.lora_targets(self.arch, comps, conv=conv, text_encoder=text_encoder)

    def te_prefixes(self) -> list[str]:
        """kohya prefix per text encoder: ["lora_te"] (SD1.5) or ["lora_te1", "lora_te2"] (SDXL)."""
        return ["lora_te"] if len(self.layout.text_encoders) == 1 else ["lora_te1", "lora_te2"]
