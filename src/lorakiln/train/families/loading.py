"""Load a base model offline: single-file checkpoint, diffusers folder or hub repo id.

Single files (what users download) are converted by diffusers' own single-file code, given
the bundled diffusers configs in configs/<family>/ so nothing is ever fetched
(reference/eval-merge-formats.md §3.6). Pickled `.ckpt` files are refused unless the caller
opts in, and even then are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import torch

from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.formats.safetensors_io import PICKLE_SUFFIXES, FormatError, read_header
from lorakiln.train.families import embedded_config

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_PATTERNS = ["*.json", "*/*.json", "*.txt", "*/*.txt", "*/*.safetensors"]
HUB_IGNORE = ["*.fp16.safetensors", "*.ema.safetensors", "*.non_ema.safetensors", "safety_checker/*", "*.bin"]


def config_dir(name: str) -> Path:
    """The bundled diffusers-layout config folder of a family (sd15, sdxl, tiny-sd15, tiny-sdxl)."""
    return Path(str(resources.files("lorakiln.train.families") / "configs" / name))


@dataclass(frozen=True)
class Layout:
    """What a family's pipeline is made of, for the loader."""

    config: str  # bundled config folder name
    text_encoders: tuple[tuple[str, str], ...]  # (subfolder, transformers class name)
    pads: tuple[str, ...]  # tokenizer pad per text encoder: "eos" or "bang"


# -- what a base is -------------------------------------------------------------------------

def base_kind(base: str | Path) -> str:
    """'file', 'folder' or 'hub'; raises a clear error for a missing local path."""
    p = Path(base).expanduser()
    if p.is_file():
        return "file"
    if p.is_dir():
        if not (p / "unet").is_dir() and not (p / "model_index.json").is_file():
            raise ConfigError(p, "is a folder but not a diffusers model (no model_index.json, no unet/)")
        return "folder"
    s = str(base)
    if p.suffix.lower() in {".safetensors", *PICKLE_SUFFIXES} or s.startswith((".", "/", "~")) or "\\" in s:
        raise ConfigError(p, "base model file not found")
    if HUB_ID.match(s):
        return "hub"
    from lorakiln.config.presets import find_preset, hub_repo_for

    if find_preset(s) is not None:
        repo = hub_repo_for(s)
        where = f" or the hub id {repo!r}" if repo else " or its hub id (owner/name)"
        raise KilnError(f"base model {s!r} names a preset, not a model: set it to the .safetensors file "
                        f"you downloaded{where}")
    raise KilnError(f"base model {s!r} is not a file, a diffusers folder or a hub repo id (owner/name)")


def read_checkpoint(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All tensors of a single-file checkpoint; pickles only with `allow_pickle`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "base model file not found")
    if path.suffix.lower() in PICKLE_SUFFIXES or _looks_pickled(path):
        return _read_pickle(path, allow_pickle)
    read_header(path)  # clear FormatError for truncated / non-safetensors files
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
        raise FormatError(path, f"cannot be read as safetensors: {e}") from None


def _looks_pickled(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"


def _read_pickle(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    if not allow_pickle:
        raise FormatError(path, "is a pickled checkpoint (.ckpt/.pt); loading a pickle can run code, so it is "
                                "refused. Use a .safetensors version, or opt in with allow_pickle "
                                "(then it is read with torch.load(weights_only=True))")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise FormatError(path, f"cannot be read as a weights-only PyTorch checkpoint: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise FormatError(path, "does not contain a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def checkpoint_keys(path: Path, allow_pickle: bool = False) -> list[str]:
    """Tensor names of a checkpoint, from the header alone when it is safetensors."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES or (path.is_file() and _looks_pickled(path)):
        return list(_read_pickle(path, allow_pickle))
    return list(read_header(path).tensors)


# -- which family ---------------------------------------------------------------------------

def detect_arch(keys: Iterable[str], where: str | Path) -> str:
    """'sd15' or 'sdxl' from checkpoint key names; SD2, refiners and unknown layouts are refused."""
    keys = set(keys)
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("conditioner.embedders.1.model."):
        return "sdxl"
    if has("conditioner.embedders.0.model."):
        raise ConfigError(where, "is an SDXL refiner checkpoint; train on an SDXL base model instead")
    if has("cond_stage_model.model."):
        raise ConfigError(where, "is a Stable Diffusion 2.x checkpoint (OpenCLIP-H text encoder); "
                                 "only SD1.x and SDXL bases are supported")
    if has("cond_stage_model.transformer."):
        return "sd15"
    if has("model.diffusion_model.") or has("first_stage_model."):
        raise ConfigError(where, "has a U-Net but no known text encoder (a U-Net-only or unknown layout); "
                                 "use a full SD1.5 or SDXL checkpoint")
    raise ConfigError(where, "is not a Stable Diffusion checkpoint (no model.diffusion_model.* keys); "
                             "is it a LoRA, a VAE or another kind of model?")


def detect_folder_arch(folder: Path) -> str:
    """'sd15' or 'sdxl' for a diffusers folder, from model_index.json / unet config."""
    index = folder / "model_index.json"
    cls = json.loads(index.read_text()).get("_class_name", "") if index.is_file() else ""
    unet_cfg = folder / "unet" / "config.json"
    cross = json.loads(unet_cfg.read_text()).get("cross_attention_dim") if unet_cfg.is_file() else None
    if "XL" in cls or cross == 2048 or (folder / "text_encoder_2").is_dir():
        return "sdxl"
    if cross == 1024:
        raise ConfigError(folder, "is a Stable Diffusion 2.x model; only SD1.x and SDXL bases are supported")
    if cross in (768, None) and cls in ("StableDiffusionPipeline", ""):
        return "sd15"
    raise ConfigError(folder, f"is a {cls or 'unknown'} model; only SD1.x and SDXL bases are supported")


def detect_family(base: str | Path, allow_pickle: bool = False) -> str:
    """Family name ('sd15' or 'sdxl') of a base given as file, folder or hub id."""
    kind = base_kind(base)
    if kind == "file":
        return detect_arch(checkpoint_keys(Path(base), allow_pickle), base)
    if kind == "folder":
        return detect_folder_arch(Path(base))
    return detect_folder_arch(hub_folder(str(base)))


def hub_folder(repo_id: str) -> Path:
    """Local snapshot of a hub repo (diffusers layout), from the cache when offline."""
    from huggingface_hub import snapshot_download

    from lorakiln.core.hub import hub_offline, hub_reachable

    cache_only = hub_offline() or not hub_reachable()  # offline: the cache at once, not six retries
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, ignore_patterns=HUB_IGNORE,
                                      local_files_only=cache_only))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, gated...
        raise KilnError(f"base model {repo_id!r}: cannot get it from the Hugging Face hub or its cache "
                        f"({e.__class__.__name__}); download it once, or give a .safetensors file or folder") from None


# -- components ---------------------------------------------------------------------------

def _transformers_class(name: str):
    import transformers

    return getattr(transformers, name)


def _check_loaded(module: torch.nn.Module, what: str, where: str | Path) -> None:
    missing = [n for n, p in module.named_parameters() if p.is_meta]
    if missing:
        raise ConfigError(where, f"has no weights for {len(missing)} {what} tensors (e.g. {missing[0]}); "
                                 "the checkpoint does not match this model family")


def load_single_file(path: Path, layout: Layout, dtype: torch.dtype, allow_pickle: bool,
                     with_vae: bool = True) -> dict[str, Any]:
    """unet, vae, text_encoders and scheduler config from an LDM/SGM single-file checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import SingleFileComponentError, create_diffusers_clip_model_from_ldm

    state = read_checkpoint(path, allow_pickle)
    cfg = embedded_config.config_folder(path) or str(config_dir(layout.config))
    common = dict(config=cfg, local_files_only=True, torch_dtype=dtype)
    try:
        unet = UNet2DConditionModel.from_single_file(state, subfolder="unet", **common)
        if with_vae and not any(k.startswith("first_stage_model.") for k in state):
            raise ConfigError(path, "has no VAE weights (first_stage_model.*); give an external VAE (vae = ...)")
        vae = AutoencoderKL.from_single_file(state, subfolder="vae", **common) if with_vae else None
        tes = [create_diffusers_clip_model_from_ldm(_transformers_class(cls), state, subfolder=sub, **common)
               for sub, cls in layout.text_encoders]
    except (ValueError, KeyError, RuntimeError, SingleFileComponentError) as e:
        raise ConfigError(path, f"cannot be loaded as {layout.config}: {e}") from None
    for name, m in [("U-Net", unet), ("VAE", vae), *(("text encoder", t) for t in tes)]:
        if m is not None:
            _check_loaded(m, name, path)
    return {"unet": unet, "vae": vae, "text_encoders": tes, "v_pred": "v_pred" in state}


def load_folder(folder: Path, layout: Layout, dtype: torch.dtype, with_vae: bool = True) -> dict[str, Any]:
    """The same from a diffusers folder (model_index.json + unet/ vae/ text_encoder*/)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    kw = dict(local_files_only=True, torch_dtype=dtype)
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kw)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **kw) if with_vae else None
        tes = [_transformers_class(cls).from_pretrained(folder, subfolder=sub, local_files_only=True, dtype=dtype)
               for sub, cls in layout.text_encoders]
    except (OSError, ValueError) as e:
        raise ConfigError(folder, f"cannot be loaded as a diffusers {layout.config} model: {e}") from None
    sched = folder / "scheduler" / "scheduler_config.json"
    pred = json.loads(sched.read_text()).get("prediction_type", "epsilon") if sched.is_file() else "epsilon"
    return {"unet": unet, "vae": vae, "text_encoders": tes, "v_pred": pred == "v_prediction"}


def load_vae(vae: str | Path, layout: Layout, dtype: torch.dtype):
    """An external VAE: a single file (LDM or diffusers keys) or a diffusers folder."""
    from diffusers import AutoencoderKL

    p = Path(vae).expanduser()
    if p.is_dir():
        sub = "vae" if (p / "vae" / "config.json").is_file() else None
        try:
            return AutoencoderKL.from_pretrained(p, subfolder=sub, local_files_only=True, torch_dtype=dtype)
        except (OSError, ValueError) as e:
            raise ConfigError(p, f"is not a diffusers VAE folder: {e}") from None
    if not p.is_file():
        raise ConfigError(p, "VAE file not found")
    state = read_checkpoint(p)
    try:
        model = AutoencoderKL.from_single_file(state, config=str(config_dir(layout.config)), subfolder="vae",
                                               local_files_only=True, torch_dtype=dtype)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ConfigError(p, f"is not a VAE checkpoint: {e}") from None
    _check_loaded(model, "VAE", p)
    return model


def source_info(base: str | Path, kind: str) -> dict[str, Any]:
    """Provenance for metadata: base name (never a local path), legacy hash, and the path for hashing later."""
    if kind == "file":
        from lorakiln.formats.lora_file import legacy_model_hash

        p = Path(base)
        return {"name": p.name, "kind": kind, "legacy_hash": legacy_model_hash(p),
                "local_path": str(p.resolve())}  # for hashing only; never into metadata
    return {"name": Path(str(base)).name if kind == "folder" else str(base), "kind": kind}
