"""tiny-sd15 / tiny-sdxl: the real diffusers/transformers classes at toy size, seeded.

Same block kinds in the same order as the full models (so LoRA names are a subset of the
full-size names), 32-wide CLIP encoders with the real CLIP vocabulary, an 8x VAE. Selected
like any base (`base = "tiny-sd15"`); a file or folder in the tiny layout loads too.
"""

from __future__ import annotations

import torch

from lorakiln.train.families.base import FAMILIES, Components
from lorakiln.train.families.loading import Layout
from lorakiln.train.families.sd15 import SD15Family
from lorakiln.train.families.sdxl import SDXLFamily

SEED = 20240601


class _Tiny:
    def load(self, base: str | None = None, *, dtype: torch.dtype = torch.float32, vae: str | None = None,
             allow_pickle: bool = False, vae_dtype: torch.dtype | None = None) -> Components:
        if base in (None, "", self.name):
            comps = self.build_random(SEED, dtype)
            if vae is not None:
                from lorakiln.train.families import loading

                comps.vae = loading.load_vae(vae, self.layout, vae_dtype or dtype).eval().requires_grad_(False)
            return comps
        return super().load(base, dtype=dtype, vae=vae, allow_pickle=allow_pickle, vae_dtype=vae_dtype)


class TinySD15Family(_Tiny, SD15Family):
    name = "tiny-sd15"
    default_resolution = 64
    layout = Layout("tiny-sd15", SD15Family.layout.text_encoders, SD15Family.layout.pads)


class TinySDXLFamily(_Tiny, SDXLFamily):
    name = "tiny-sdxl"
    default_resolution = 64
    layout = Layout("tiny-sdxl", SDXLFamily.layout.text_encoders, SDXLFamily.layout.pads)


FAMILIES.register("tiny-sd15", TinySD15Family())
FAMILIES.register("tiny-sdxl", TinySDXLFamily())
