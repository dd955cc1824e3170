"""YOLO detector runner on onnxruntime, matching deepghs imgutils' `yolo_predict` code path.

What imgutils does (imgutils/generic/yolo.py, imgutils/data/encode.py, imgutils/data/image.py),
and what this module does the same way:
- the picture is made RGB, transparency composited on white;
- it is *stretched* (no letterbox, no padding) with Pillow's bicubic resize to the model's
  size: the ONNX metadata `imgsz` (Ultralytics writes it on export), else 640. imgutils'
  optional `allow_dynamic` mode (keep the aspect ratio, shrink to fit, round each side up
  to a multiple of 32) is `dynamic=True` here; it is off by default, as in imgutils;
- values /255 as float32, CHW, batched to NCHW, fed to input `images`, output `output0`;
- YOLOv8/11 output [4 + classes, candidates] rows (cx, cy, w, h, class scores...): a
  candidate stays when its best class score is above conf (strictly), boxes become corners,
  one class-agnostic greedy NMS (inclusive-pixel areas, IoU above the threshold dropped),
  label = best class; an end-to-end output [candidates, 6] (x0, y0, x1, y1, score, class;
  YOLOv10) is filtered the same way;
- corners are scaled back by old/new size per axis, clipped to the picture, rounded.
Labels come from the metadata `names` ("{0: 'person'}"), read with ast.literal_eval.
Where we differ, on purpose: a fixed input shape wins over `imgsz`, and `imgsz` is read as
Ultralytics writes it, [height, width] (imgutils takes it as (width, height); the same for the
square 640 models); ties in score keep their candidate order in NMS (imgutils' unstable
argsort may swap them); files are decoded upright (EXIF orientation applied), as everywhere
in kiln, so boxes fit the picture users see.

Batching: Ultralytics exports a fixed input [1, 3, 640, 640] unless exported with
dynamic=True ([batch, 3, height, width]). We could not open the deepghs files here (no
network), so the runner reads the input shape: a batch dimension fixed to 1 runs one picture
at a time, anything else runs whole batches (all pictures share the model size unless
`dynamic` is on, in which case pictures are grouped by their prepared size); a batched run
that fails falls back to one at a time, and `fallback` says why.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image

from lorakiln.core.batch_run import run_batched
from lorakiln.core.errors import ConfigError, ItemError, KilnError
from lorakiln.core.onnx_session import open_session
from lorakiln.dataset.decode import load_rgb, to_rgb
from lorakiln.vision.boxes import clip_round, nms, scale_boxes, xywh_to_xyxy

DEFAULT_SIZE = 640  # imgutils' fallback when the model has no imgsz metadata
ALIGN = 32
WHITE = (255, 255, 255)


class Detection(NamedTuple):
    """One detection; unpacks like imgutils' ((x0, y0, x1, y1), label, score)."""

    box: tuple[int, int, int, int]
    label: str
    score: float


# -- preprocessing -------------------------------------------------------------------------
def target_size(size: tuple[int, int], model_size: tuple[int, int], dynamic: bool = False,
                align: int = ALIGN) -> tuple[int, int]:
    """(w, h) the picture is resized to: the model size, or in dynamic mode the picture
    shrunk to fit it (never enlarged) with each side rounded up to a multiple of `align`."""
    if not dynamic:
        return model_size
    w, h = size
    r = min(model_size[0] / w, model_size[1] / h)
    if r < 1:
        w, h = w * r, h * r
    return int(math.ceil(w / align) * align), int(math.ceil(h / align) * align)


def prepare(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """One picture as a (3, h, w) float32 RGB array with values 0-1, stretched to `size` (w, h)."""
    img = to_rgb(img, WHITE)
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0))


# -- decoding ------------------------------------------------------------------------------
def decode(output: np.ndarray, labels: Sequence[str], conf: float, iou: float,
           old_size: tuple[int, int], new_size: tuple[int, int]) -> list[Detection]:
    """One picture's raw output -> detections on the original picture, best first."""
    output = np.asarray(output)
    conf = output.dtype.type(conf) if output.dtype.kind == "f" else conf  # float32 0.6 is not above 0.6
    if output.ndim == 2 and output.shape[0] == 4 + len(labels):
        scores_all = output[4:].T
        best = scores_all.max(axis=1)
        keep = best > conf
        boxes = xywh_to_xyxy(output[:4].T[keep])
        scores, classes = best[keep], scores_all[keep].argmax(axis=1)
    elif output.ndim == 2 and output.shape[1] == 6:
        keep = output[:, 4] > conf
        boxes, scores, classes = output[keep, :4], output[keep, 4], output[keep, 5].astype(np.int64)
    else:
        raise KilnError(f"detector output shape {list(output.shape)} is neither [4+{len(labels)}, N] "
                        f"(YOLOv8/11) nor [N, 6] (end-to-end): the labels do not match the model")
    idx = nms(boxes, scores, iou)
    fixed = clip_round(scale_boxes(boxes[idx], new_size, old_size), old_size)
    return [Detection(tuple(int(v) for v in b), labels[int(c)], float(s))
            for b, c, s in zip(fixed, classes[idx], scores[idx])]


def parse_names(text: str) -> list[str]:
    """Ultralytics' `names` metadata ("{0: 'person', 1: 'head'}") -> labels in class order."""
    try:
        names = ast.literal_eval(text)
        return [str(names[i]) for i in range(len(names))]
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise KilnError(f"cannot read the model's class names from metadata {text[:100]!r}") from None


def model_size(shape: Sequence, imgsz: str | None) -> tuple[int, int]:
    """(w, h) of the model input: fixed NCHW dims, else metadata imgsz ([h, w] or n), else 640."""
    if len(shape) == 4 and all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[3]), int(shape[2])
    if imgsz:
        v = json.loads(imgsz)
        h, w = (v, v) if isinstance(v, int) else (v[0], v[-1])
        return int(w), int(h)
    return DEFAULT_SIZE, DEFAULT_SIZE


# -- the session ---------------------------------------------------------------------------
class YoloDetector:
    """One loaded YOLO ONNX detector: `detect(pictures)` -> detections per picture."""

    def __init__(self, name: str, model_path: Path, conf: float, iou: float,
                 labels: Sequence[str] | None = None, device: str = "auto", dynamic: bool = False):
        self.name, self.source, self.conf, self.iou = name, str(model_path), conf, iou
        self.origin = self.source  # where the file came from (the loader says "hub repo@commit")
        self.session, self._quiet = open_session(model_path, device)
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or inp.shape[1] not in (3, "3"):
            raise ConfigError(model_path, f"expected an NCHW image input [batch, 3, h, w]; the model's is {inp.shape}")
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        self.size = model_size(inp.shape, meta.get("imgsz"))
        fixed_hw = all(isinstance(d, int) and d > 0 for d in inp.shape[2:])
        self.dynamic = dynamic and not fixed_hw  # a fixed input size leaves nothing to choose
        self.labels = parse_names(meta["names"]) if "names" in meta else list(labels or [])
        if not self.labels:
            raise ConfigError(model_path, "the model has no `names` metadata and no labels were given")
        self.max_batch: int | None = 1 if inp.shape[0] == 1 else None
        self.fallback: str | None = "the model's batch dimension is fixed to 1" if self.max_batch == 1 else None

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def detect(self, pictures: Sequence[Image.Image], conf: float | None = None,
               iou: float | None = None) -> list[list[Detection]]:
        """Detections for each picture, batched where the model and the prepared sizes allow."""
        conf = self.conf if conf is None else conf
        iou = self.iou if iou is None else iou
        sizes = [p.size for p in pictures]
        targets = [target_size(s, self.size, self.dynamic) for s in sizes]
        out: list[list[Detection]] = [[] for _ in pictures]
        for target in dict.fromkeys(targets):
            idx = [i for i, t in enumerate(targets) if t == target]
            raw = self.run(np.stack([prepare(pictures[i], target) for i in idx]))
            for i, o in zip(idx, raw):
                out[i] = decode(o, self.labels, conf, iou, sizes[i], target)
        return out

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Raw outputs [n, ...] for a prepared NCHW batch; one at a time where batches fail."""
        return run_batched(self, batch, self._run)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self.session.run([self.output_name], {self.input_name: batch}, self._quiet)[0])
        if out.ndim != 3 or out.shape[0] != len(batch):
            raise KilnError(f"{self.source}: output shape {list(out.shape)}, expected [{len(batch)}, ..., ...]")
        return out

    def detect_files(self, paths: Sequence[Path], batch_size: int = 8) -> Iterator[tuple[int, list[Detection] | ItemError]]:
        """(index, detections or ItemError) per file, a batch at a time (for progress bars)."""
        for start in range(0, len(paths), batch_size):
            idx, pics = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    pics.append(load_rgb(Path(paths[i]), WHITE))
                    idx.append(i)
                except ItemError as e:
                    yield i, e
            if pics:
                yield from zip(idx, self.detect(pics))
