"""Load a base model for sampling: family, device, dtype, and the names the infotext needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lorakiln.core.errors import KilnError


def pick_device(pref: str = "auto") -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise KilnError("[eval] device 'cuda': no CUDA device is available; set device = \"auto\" or \"cpu\"")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


@dataclass
class LoadedModel:
    family: object
    comps: object
    device: torch.device
    base: str
    name: str  # "Model:" in the infotext (file stem, folder name, hub id or family name)
    hash: str | None  # "Model hash:" (AutoV2, 10 hex) for single files, when known
    identity: str  # what cached pictures depend on

    @property
    def resolution(self) -> int:
        return int(self.family.default_resolution)


def identity_of(family_name: str, base: str) -> str:
    """Family + base + (for files) size and modification time: a changed file invalidates caches."""
    p = Path(base).expanduser()
    if p.is_file():
        st = p.stat()
        return f"{family_name}|{p.resolve()}|{st.st_size}|{int(st.st_mtime)}"
    return f"{family_name}|{base}"


def load_model(base: str, *, device: str = "auto", precision: str = "auto",
               cache_dir: Path | None = None) -> LoadedModel:
    """The family of `base` (family name, preset name, file, folder or hub id), loaded on the device."""
    from lorakiln.services.train import pick_family

    family = pick_family(base)
    dev = pick_device(device)
    dtype = pick_dtype(precision, dev)
    comps = family.load(base, dtype=dtype)
    for m in (comps.unet, comps.vae, *comps.text_encoders):
        m.to(dev)
    p = Path(base).expanduser()
    sha = None
    if p.is_file() and cache_dir is not None:
        from lorakiln.services.train_runner import base_sha256

        sha = base_sha256(str(p), Path(cache_dir))
    name = p.stem if p.is_file() else (p.name if p.is_dir() else str(base))
    return LoadedModel(family, comps, dev, str(base), name, sha[:10] if sha else None,
                       identity_of(family.name, str(base)))
