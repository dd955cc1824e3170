"""Generated pictures on disk, named by what they depend on, so work already done is found again.

The key of a picture hashes the model identity, the prompt, negative prompt, seed, sampler,
steps, CFG, size, clip skip and each LoRA's tensor hash and weights. A picture is written
atomically with its A1111 infotext the moment it is made, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from lorakiln.core.atomic import write_bytes
from lorakiln.evaluate.infotext import format_infotext, lora_hashes_value, png_bytes, sampler_label
from lorakiln.evaluate.sampling import Job


def job_key(model_identity: str, job: Job, lora_hashes: dict[str, str]) -> str:
    s = job.settings
    doc = {"model": model_identity, "prompt": job.prompt, "negative": job.negative, "seed": int(job.seed),
           "sampler": s.sampler, "steps": s.steps, "cfg": float(s.cfg), "size": [s.width, s.height],
           "clip_skip": s.clip_skip, "loras": [[lora_hashes[lr.path], float(lr.te), float(lr.unet)] for lr in s.loras]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def slug(text: str, n: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return s[:n].rstrip("_") or "image"


def infotext_for(job: Job, display_prompt: str, model_name: str, model_hash: str | None,
                 aliases: dict[str, str], lora_hashes: dict[str, str]) -> str:
    """A1111 parameters text of one picture; `display_prompt` keeps the LoRA tags."""
    from lorakiln import __version__

    s = job.settings
    hashes = {aliases[lr.path]: lora_hashes[lr.path] for lr in s.loras}
    params = {"Steps": s.steps, "Sampler": sampler_label(s.sampler), "CFG scale": f"{s.cfg:g}", "Seed": job.seed,
              "Size": f"{s.width}x{s.height}", "Model hash": model_hash, "Model": model_name,
              "Clip skip": s.clip_skip if s.clip_skip > 1 else None,
              "Lora hashes": lora_hashes_value(hashes) if hashes else None, "Version": f"lorakiln {__version__}"}
    return format_infotext(display_prompt, job.negative, params)


def save_png(path: Path, image, infotext: str) -> Path:
    """Write the picture; an analysis cached for an older picture at this path is dropped."""
    from lorakiln.evaluate.analysis import sidecar

    write_bytes(Path(path), png_bytes(image, infotext))
    sidecar(Path(path)).unlink(missing_ok=True)
    return Path(path)
