"""Stable Diffusion 1.x (incl. NovelAI-derived anime models): one CLIP-L text encoder, clip skip."""

from __future__ import annotations


from lorakiln.train.families.base import FAMILIES, Components, Conditioning
from lorakiln.train.families.loading import Layout
from lorakiln.train.families.prompts import hidden_layer, join_windows, token_windows
from lorakiln.train.families.stable_diffusion import StableDiffusionFamily


class SD15Family(StableDiffusionFamily):
    name = "sd15"
    arch = "sd15"
    default_resolution = 512
    layout = Layout("sd15", (("text_encoder", "CLIPTextModel"),), ("eos",))

    def encode_prompts(self, comps: Components, captions: list[str], *, clip_skip: int = 1,
                       max_token_length: int = 75, sizes: list[tuple] | None = None) -> Conditioning:
        """CLIP-L states of layer -clip_skip, final layer norm applied (kohya/A1111), windows joined."""
        if clip_skip < 1:
            raise ValueError(f"clip_skip must be >= 1, got {clip_skip}")
        ids = token_windows(comps.tokenizers[0], captions, max_token_length)
        states, _ = hidden_layer(comps.text_encoders[0], ids.reshape(-1, ids.shape[-1]), clip_skip, final_norm=True)
        return Conditioning(join_windows(states, len(captions)))

    def pipeline(self, comps: Components, sampler_name: str = "euler_a"):
        """A diffusers StableDiffusionPipeline over these components (no downloads, no safety checker)."""
        from diffusers import StableDiffusionPipeline

        from lorakiln.evaluate.samplers import make_scheduler

        return StableDiffusionPipeline(
            vae=comps.vae, text_encoder=comps.text_encoders[0], tokenizer=comps.tokenizers[0], unet=comps.unet,
            scheduler=make_scheduler(sampler_name, comps.noise_scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def metadata(self, comps: Components | None = None, *, clip_skip: int | None = None) -> dict[str, str]:
        """Base-model keys of a LoRA's metadata (kohya ss_* + ModelSpec, §3.3-3.4)."""
        pred = "v" if comps is not None and comps.prediction_type == "v_prediction" else "epsilon"
        meta = {"ss_base_model_version": "sd_v1_v" if pred == "v" else "sd_v1", "ss_v2": "False",
                "modelspec.architecture": "stable-diffusion-v1/lora", "modelspec.implementation": "diffusers",
                "modelspec.resolution": "512x512", "modelspec.prediction_type": pred}
        if clip_skip is not None:
            meta["modelspec.encoder_layer"] = str(clip_skip)
        return meta


FAMILIES.register("sd15", SD15Family())
