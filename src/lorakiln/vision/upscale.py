"""Super-resolution of pictures with an ONNX upscaler on onnxruntime, tiled (vision/tiling.py).

Input conventions, as deepghs' exports and imgutils' runners use them (imgutils/upscale/cdc.py,
waifu2x.py, real_esrgan.py): one NCHW float32 input, RGB, values 0-1; output NCHW 0-1, clipped.
Two exports bend that and are handled from what the model itself shows:
- CDC (deepghs/cdc_anime_onnx) returns a 6-D tensor [n, 3, s, h, s, w]; imgutils turns it into
  [n, 3, s*h, s*w] with a plain reshape, and so do we. It wants sides that are a multiple of 16
  (imgutils pads by reflection): the probe finds such alignments and the runner pads and crops.
- waifu2x (deepghs/waifu2x_onnx) crops a border off its output: imgutils feeds it the input
  reflect-padded by 8 pixels a side. The probe measures that border and the runner pads the same.
- imgutils' RealESRGAN exports (deepghs/imgutils-models real_esrgan/) take BGR: `bgr=True`.

Scale: the metadata key `scale` when the export wrote one, else measured. The probe runs two small
inputs of different sizes (trying alignments 1, 8, 16, 32, 64 until the model accepts them) and
solves out = scale * in - 2 * border on each axis; the scale and border must come out whole and the
same on both axes.

Transparency: the colour channels go through the network as they are (not composited), the
alpha channel is resized with Pillow (Lanczos) to the same size, as imgutils does with its own
resampling. `upscale_to` reaches a wanted short side: as many passes as needed, then one Lanczos
resize down to the exact size (see `plan_passes`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from PIL import Image

from lorakiln.core.batch_run import run_batched
from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.onnx_session import open_session
from lorakiln.vision.tiling import Progress, check_tiling, upscale_tiled

ALIGNS = (1, 8, 16, 32, 64)
PROBE = 24  # smallest probe side (input pixels) before alignment


class Upscaler(Protocol):
    name: str
    scale: int
    max_batch: int | None  # None: any batch size

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(n, 3, h, w) float32 RGB 0-1 -> (n, 3, h*scale, w*scale) float32."""


class OnnxUpscaler:
    """One ONNX single-image SR network: scale, alignment and border read or measured at load."""

    def __init__(self, path: Path | str, device: str = "auto", bgr: bool = False, name: str | None = None):
        self.path, self.bgr = Path(path), bgr
        self.name = name or self.path.stem
        self.origin = f"file {self.path}"
        self.session, self._quiet = open_session(self.path, device)
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or (isinstance(inp.shape[1], int) and inp.shape[1] != 3):
            raise ConfigError(self.path, f"input {inp.name} has shape {inp.shape}; an upscaler takes [n, 3, h, w]")
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        self.source = str(self.path)  # named in run_batched's messages
        self.max_batch = 1 if inp.shape[0] == 1 else None
        self.fallback: str | None = "the model's batch dimension is fixed to 1" if self.max_batch == 1 else None
        self.fixed = tuple(inp.shape[2:]) if all(isinstance(d, int) for d in inp.shape[2:]) else None
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        self.scale, self.border, self.align = self._geometry(meta.get("scale"))

    # -- geometry ---------------------------------------------------------------------------
    def _geometry(self, meta_scale: str | None) -> tuple[int, int, int]:
        if self.fixed is not None:
            raise ConfigError(self.path, f"the input size is fixed to {self.fixed}; export the upscaler with "
                                         "dynamic height and width so it can run on tiles of any size")
        errors = []
        for align in ALIGNS:
            try:
                scale, border = self._solve(align)
            except Exception as e:  # noqa: BLE001 - sizes the model refuses: try the next alignment
                errors.append(f"align {align}: {str(e).splitlines()[0][:160]}")
                continue
            if meta_scale is not None and str(meta_scale).strip() != str(scale):
                raise ConfigError(self.path, f"metadata says scale {meta_scale} but the network scales by {scale}")
            return scale, border, align
        raise ConfigError(self.path, "not a single-image upscaler this runner can measure: " + "; ".join(errors))

    def _solve(self, align: int) -> tuple[int, int]:
        """(scale, input pixels the network crops off each side) from two probe runs."""
        h1 = _round_up(PROBE, align)
        w1 = h1 + align
        h2, w2 = h1 + align, w1 + 2 * align
        (o1, p1), (o2, p2) = self._probe_out(h1, w1), self._probe_out(h2, w2)
        scale_h, scale_w = (o2 - o1) / (h2 - h1), (p2 - p1) / (w2 - w1)
        crop_h, crop_w = scale_h * h1 - o1, scale_w * w1 - p1
        if scale_h != scale_w or crop_h != crop_w or scale_h < 1 or scale_h % 1 or crop_h % 2 or crop_h < 0:
            raise ValueError(f"inputs {h1}x{w1} and {h2}x{w2} gave outputs {o1}x{p1} and {o2}x{p2}: "
                             "no single integer scale")
        scale, crop = int(scale_h), int(crop_h) // 2  # crop: output pixels cut off each side
        if crop % scale:
            raise ValueError(f"the network cuts {crop} output pixels a side, not whole input pixels")
        return scale, crop // scale

    def _probe_out(self, h: int, w: int) -> tuple[int, int]:
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        y = self._raw(x)
        return y.shape[-2], y.shape[-1]

    def _raw(self, x: np.ndarray) -> np.ndarray:
        (y,) = self.session.run([self.output_name], {self.input_name: x}, self._quiet)
        if y.ndim == 6:  # CDC: [n, c, s, h, s, w], read the way imgutils reads it
            n, c, s1, h, s2, w = y.shape
            y = y.reshape(n, c, s1 * h, s2 * w)
        if y.ndim != 4 or y.shape[1] != 3:
            raise ValueError(f"output shape {y.shape}: not [n, 3, h, w]")
        return y

    # -- running ----------------------------------------------------------------------------
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Batches go through whole; if the model fails on one although its batch dimension is not
        fixed, it runs one tile at a time from then on and `fallback` says why."""
        return run_batched(self, batch, self._run)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n, _, h, w = batch.shape
        x = batch[:, ::-1] if self.bgr else batch
        b = self.border
        if b:
            x = np.pad(x, ((0, 0), (0, 0), (b, b), (b, b)), mode="reflect" if min(h, w) > b else "edge")
        ph, pw = _round_up(h + 2 * b, self.align) - h - 2 * b, _round_up(w + 2 * b, self.align) - w - 2 * b
        if ph or pw:
            mode = "reflect" if min(x.shape[2] - 1, x.shape[3] - 1) >= max(ph, pw) else "edge"
            x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
        y = self._raw(np.ascontiguousarray(x, dtype=np.float32))[:, :, :h * self.scale, :w * self.scale]
        return y[:, ::-1] if self.bgr else y


# -- pictures ------------------------------------------------------------------------------------
def upscale_image(img: Image.Image, model: Upscaler, *, tile: int = 512, overlap: int = 32, batch: int = 4,
                  blend: str = "feather", progress: Progress | None = None) -> Image.Image:
    """One pass of the model over a picture; RGB out, or RGBA when the picture has transparency."""
    check_tiling(tile, overlap, blend)
    alpha = _alpha(img)
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    size = (img.width * model.scale, img.height * model.scale)
    out = upscale_tiled(rgb, model.run, model.scale, tile, overlap,
                        batch if model.max_batch is None else min(batch, model.max_batch), blend, progress)
    result = Image.fromarray(out, "RGB")
    if alpha is not None:
        result.putalpha(alpha.resize(size, Image.Resampling.LANCZOS))
    return result


def plan_passes(size: tuple[int, int], min_short_side: int, scale: int) -> tuple[int, tuple[int, int]]:
    """(passes of the model, final (w, h)) to bring the short side to exactly `min_short_side`,
    keeping the aspect ratio (long side rounded). No pass when the short side is long enough."""
    w, h = size
    short = min(w, h)
    if short >= min_short_side:
        return 0, size
    if scale < 2:
        raise KilnError(f"a scale-{scale} model cannot enlarge a picture")
    passes = math.ceil(math.log(min_short_side / short, scale) - 1e-9)
    while short * scale ** passes < min_short_side:  # guard the float log
        passes += 1
    r = min_short_side / short
    final = (min_short_side, max(1, round(h * r))) if w <= h else (max(1, round(w * r)), min_short_side)
    return passes, final


def upscale_to(img: Image.Image, min_short_side: int, model: Upscaler,
               pass_progress: Callable[[int, int], Progress | None] | None = None, **kw) -> Image.Image:
    """Enlarge until the short side is at least `min_short_side`, then Lanczos down to exactly it.
    `pass_progress(pass, passes)` may give a per-tile progress callback for each pass."""
    passes, final = plan_passes(img.size, min_short_side, model.scale)
    for i in range(passes):
        img = upscale_image(img, model, progress=pass_progress(i, passes) if pass_progress else None, **kw)
    if img.size != final:
        img = img.resize(final, Image.Resampling.LANCZOS)
    return img


def _alpha(img: Image.Image) -> Image.Image | None:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return img.convert("RGBA").getchannel("A")
    return None


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align
