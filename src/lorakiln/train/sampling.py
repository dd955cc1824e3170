"""Sample images during training through the family's diffusers pipeline.

Sampling must not disturb training: it runs under no_grad with every global RNG (python,
numpy, torch) saved and restored, so a run with samples trains exactly like one without.
Each image is saved with its prompt (a PNG text chunk and a .txt beside it).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch
from PIL.PngImagePlugin import PngInfo

from lorakiln.core.atomic import write_bytes, write_text
from lorakiln.train.sample_prompts import SamplePrompt
from lorakiln.train.state import rng_state, set_rng_state


def prompt_text(p: SamplePrompt, sampler: str, width: int, height: int, seed: int) -> str:
    neg = f" --n {p.negative}" if p.negative else ""
    return f"{p.prompt}{neg} --w {width} --h {height} --d {seed} --s {p.steps} --l {p.scale} --ss {sampler}"


def make_sampler(family, comps, prompts: list[SamplePrompt], *, default_sampler: str, resolution: tuple[int, int],
                 seed: int, out_dir: Path, device) -> Callable[[str, int, int], list[str]]:
    """(tag, epoch, step) -> relative paths of the images written."""

    def sample(tag: str, epoch: int, step: int) -> list[str]:
        saved = rng_state()
        files: list[str] = []
        try:
            pipes: dict[str, object] = {}
            for i, p in enumerate(prompts):
                name = p.sampler or default_sampler
                if name not in pipes:
                    pipe = family.pipeline(comps, name)
                    pipe.set_progress_bar_config(disable=True)
                    pipes[name] = pipe
                w, h = p.width or resolution[0], p.height or resolution[1]
                s = p.seed if p.seed is not None else seed + i
                gen = torch.Generator(device="cpu").manual_seed(s)
                with torch.no_grad():
                    img = pipes[name](p.prompt, negative_prompt=p.negative or None, width=w, height=h,
                                      num_inference_steps=p.steps, guidance_scale=p.scale, generator=gen).images[0]
                text = prompt_text(p, name, w, h, s)
                stem = f"{tag}-{i:02d}"
                info = PngInfo()
                info.add_text("parameters", text)
                buf = io.BytesIO()
                img.save(buf, "PNG", pnginfo=info)
                write_bytes(out_dir / f"{stem}.png", buf.getvalue())
                write_text(out_dir / f"{stem}.txt", text + "\n")
                files.append(f"{out_dir.name}/{stem}.png")
        finally:
            set_rng_state(saved)
        return files

    return sample
