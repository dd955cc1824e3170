"""SDXL (Animagine XL, Pony Diffusion V6, Illustrious, NoobAI): CLIP-L + OpenCLIP-G, size conditioning."""

from __future__ import annotations

import torch

from lorakiln.train.families.base import FAMILIES, Components, Conditioning
from lorakiln.train.families.loading import Layout
from lorakiln.train.families.prompts import hidden_layer, join_windows, pooled_output, token_windows
from lorakiln.train.families.stable_diffusion import StableDiffusionFamily


class SDXLFamily(StableDiffusionFamily):
    name = "sdxl"
    arch = "sdxl"
    default_resolution = 1024
    layout = Layout("sdxl", (("text_encoder", "CLIPTextModel"), ("text_encoder_2", "CLIPTextModelWithProjection")),
                    ("eos", "bang"))

    def encode_prompts(self, comps: Components, captions: list[str], *, clip_skip: int = 1,
                       max_token_length: int = 75, sizes: list[tuple] | None = None) -> Conditioning:
        """Penultimate layers of both encoders (no final norm), concatenated; pooled te2 output of the
        first window; time_ids per caption from `sizes` = (orig_h, orig_w, crop_top, crop_left,
        target_h, target_w). clip_skip is ignored, as in sd-scripts: SDXL is built on layer -2."""
        (tok1, tok2), (te1, te2) = comps.tokenizers, comps.text_encoders
        n = len(captions)
        ids1 = token_windows(tok1, captions, max_token_length)
        ids2 = token_windows(tok2, captions, max_token_length)
        flat1, flat2 = ids1.reshape(-1, ids1.shape[-1]), ids2.reshape(-1, ids2.shape[-1])
        h1, _ = hidden_layer(te1, flat1, 2, final_norm=False)
        h2, last2 = hidden_layer(te2, flat2, 2, final_norm=False)
        pooled = pooled_output(te2, last2, flat2, tok2.eos_token_id)[:: ids2.shape[1]]
        hidden = torch.cat([join_windows(h1, n), join_windows(h2.to(h1.dtype), n)], dim=-1)
        return Conditioning(hidden, pooled, self.time_ids(sizes, n))

    def time_ids(self, sizes: list[tuple] | None, n: int) -> torch.Tensor:
        """[n, 6] size/crop conditioning; default: an uncropped square at the family resolution."""
        r = self.default_resolution
        rows = sizes if sizes is not None else [(r, r, 0, 0, r, r)] * n
        if len(rows) != n or any(len(s) != 6 for s in rows):
            raise ValueError("sizes needs one (orig_h, orig_w, crop_top, crop_left, target_h, target_w) per caption")
        return torch.tensor([list(map(float, s)) for s in rows], dtype=torch.float32)

    def pipeline(self, comps: Components, sampler_name: str = "euler_a"):
        """A diffusers StableDiffusionXLPipeline over these components (no downloads, no watermark)."""
        from diffusers import StableDiffusionXLPipeline

        from lorakiln.evaluate.samplers import make_scheduler

        (tok1, tok2), (te1, te2) = comps.tokenizers, comps.text_encoders
        return StableDiffusionXLPipeline(
            vae=comps.vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tok1, tokenizer_2=tok2,
            unet=comps.unet, scheduler=make_scheduler(sampler_name, comps.noise_scheduler.config),
            force_zeros_for_empty_prompt=True, add_watermarker=False)

    def metadata(self, comps: Components | None = None, *, clip_skip: int | None = None) -> dict[str, str]:
        """Base-model keys of a LoRA's metadata (kohya ss_* + ModelSpec, §3.3-3.4)."""
        pred = "v" if comps is not None and comps.prediction_type == "v_prediction" else "epsilon"
        meta = {"ss_base_model_version": "sdxl_base_v1-0", "ss_v2": "False",
                "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
                "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
                "modelspec.resolution": "1024x1024", "modelspec.prediction_type": pred}
        if clip_skip is not None:
            meta["modelspec.encoder_layer"] = str(clip_skip)
        return meta


FAMILIES.register("sdxl", SDXLFamily())
