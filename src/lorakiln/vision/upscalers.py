"""Where an upscaler comes from: an ONNX file or folder, a PyTorch upscaler file, or a hub repo.

- `x.onnx`, or a folder holding `model.onnx` (or exactly one .onnx file): onnxruntime
  (vision/upscale.py).
- `x.pth`, `x.ckpt`, `x.safetensors` (the ESRGAN/RealESRGAN/SwinIR/... files chaiNNer and ComfyUI
  users have): through spandrel, an optional extra (`pip install spandrel`). spandrel imports
  torchvision when it is imported, and torchvision must be the build that matches the installed
  torch, so where it cannot be imported the message says so. spandrel reads .safetensors without
  pickle and .pth/.ckpt with torch.load and its own restricted unpickler (only tensors,
  containers and a short list of harmless classes). A TorchScript `.pt` runs code stored in the file
  and is refused.
- `owner/name` (a Hugging Face repo): `filename` (default model.onnx) at `revision`, through the
  HF cache; offline (HF_HUB_OFFLINE, or the hub not reachable) only the cache is read, and a
  missing file is a KilnError naming the file, the repo and where to put it. deepghs' upscalers:
  `deepghs/cdc_anime_onnx` with filename `HGSR-MHR-anime-aug_X4_320.onnx`; `deepghs/waifu2x_onnx`
  with `{version}/onnx_models/{model}/{type}/{noise}{scale}.onnx` names, e.g.
  `20230504/onnx_models/swin_unet/art/scale2x.onnx`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.hub import hub_endpoint, hub_offline, hub_reachable
from lorakiln.tagging.loading import _hub_reason
from lorakiln.vision.upscale import OnnxUpscaler, Upscaler

MODEL_FILE = "model.onnx"
SPANDREL_SUFFIXES = (".pth", ".ckpt", ".safetensors")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def load_upscaler(source: str | Path, *, filename: str = MODEL_FILE, revision: str = "main",
                  cache_dir: str | None = None, device: str = "auto", bgr: bool = False,
                  root: Path | None = None) -> Upscaler:
    """A ready upscaler from a file, a folder or a hub repo id (see the module notes)."""
    path = Path(source).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    if path.exists():
        return _from_path(path, device, bgr)
    text = str(source)
    if _REPO_RE.match(text) and not text.startswith((".", "/", "~")) and not Path(text).suffix:
        model, origin = _from_hub(text, filename, revision, cache_dir)
        up = _from_path(model, device, bgr)
        up.origin = origin
        return up
    raise KilnError(f"upscaler {text}: no such file or folder ({path}); give an .onnx file, a folder holding "
                    f"{MODEL_FILE}, a .pth/.safetensors upscaler file (with spandrel installed) or a hub repo id")


def _from_path(path: Path, device: str, bgr: bool) -> Upscaler:
    if path.is_dir():
        cands = [path / MODEL_FILE] if (path / MODEL_FILE).is_file() else sorted(path.glob("*.onnx"))
        if len(cands) != 1:
            raise KilnError(f"upscaler folder {path}: expected {MODEL_FILE} (or exactly one .onnx file), found "
                            f"{', '.join(p.name for p in cands) or 'none'}")
        path = cands[0]
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxUpscaler(path, device, bgr)
    if suffix in SPANDREL_SUFFIXES:
        return SpandrelUpscaler(path, device)
    if suffix == ".pt":
        raise ConfigError(path, "a TorchScript .pt file runs code stored in it and is not loaded; use the "
                                ".pth or .safetensors weights of the same model, or an ONNX export")
    raise ConfigError(path, f"unknown upscaler format {suffix or '(no suffix)'}: use .onnx, "
                            f"{', '.join(SPANDREL_SUFFIXES)}")


def import_spandrel(path: Path):
    """spandrel, or a KilnError naming the optional extra and why it did not import."""
    try:
        import spandrel
    except Exception as e:  # ImportError, or torchvision failing against this torch (RuntimeError etc.)
        why = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() else type(e).__name__
        raise ConfigError(path, (
            f"PyTorch upscaler files ({', '.join(SPANDREL_SUFFIXES)}) load through spandrel, an optional extra "
            f"that could not be imported ({why}). Install it with `pip install spandrel`; it needs torchvision "
            "built for the installed torch (a CPU torch needs the CPU torchvision wheel). Or export the model "
            "to ONNX and load the .onnx file instead.")) from None
    return spandrel


class SpandrelUpscaler:
    """A PyTorch single-image upscaler file loaded by spandrel (safe loading only, see module notes)."""

    max_batch: int | None = None

    def __init__(self, path: Path, device: str = "auto"):
        spandrel = import_spandrel(path)
        import torch

        self.path, self.name, self.origin = path, path.stem, f"file {path}"
        self.device = torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")
        try:
            desc = spandrel.ModelLoader(device=self.device).load_from_file(str(path))
        except Exception as e:  # unsupported architecture, unsafe pickle, broken file
            raise ConfigError(path, f"spandrel cannot load it: {type(e).__name__}: {str(e)[:300]}") from None
        if not isinstance(desc, spandrel.ImageModelDescriptor) or desc.input_channels != 3 \
                or desc.output_channels != 3:
            raise ConfigError(path, f"{desc.architecture.name}: not an RGB single-image upscaler")
        self.desc = desc.eval()
        self.scale = int(desc.scale)

    def run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.desc(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return y.float().cpu().numpy()


def _from_hub(repo: str, filename: str, revision: str, cache_dir: str | None) -> tuple[Path, str]:
    from huggingface_hub import constants, hf_hub_download

    offline = hub_offline()
    endpoint = hub_endpoint()
    unreachable = not offline and not hub_reachable(endpoint)
    try:
        path = Path(hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir,
                                    local_files_only=offline or unreachable, endpoint=endpoint))
    except Exception as e:  # hub errors come in many types; each gets the same clear advice
        cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
        why = (f"{endpoint} cannot be reached from this machine and the file is not in the cache" if unreachable
               else "not in the local cache (HF_HUB_OFFLINE is set)" if offline else _hub_reason(e))
        repo_dir = cache / f"models--{repo.replace('/', '--')}"
        raise KilnError(
            f"upscaler {repo}: cannot get {filename} (revision {revision}): {why}. Either put it in the Hugging "
            f"Face cache {repo_dir} (on a connected machine: `hf download {repo} {filename} --revision "
            f"{revision}`, then copy the cache), or download {filename} from https://huggingface.co/{repo} "
            "and load the file or its folder instead.") from None
    snap = path.parents[len(Path(filename).parts) - 1]
    commit = snap.name if snap.parent.name == "snapshots" else revision
    return path, f"hub {repo}@{commit}"
