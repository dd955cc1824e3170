"""WD-style ONNX tagger runner: labels CSV, onnxruntime session, batched prediction pipeline.

The SmilingWolf WD taggers (v1.4/v2 and v3) and the Z3D e621 tagger share one contract:
input NHWC float32 [batch, S, S, 3] (BGR, 0-255), output sigmoid probabilities [batch, n]
in the order of the labels CSV. v3 models take any batch size; a model whose batch
dimension is fixed to 1 (or that fails on a batch) is run one image at a time.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from lorakiln.core.batch_run import run_batched
from lorakiln.core.errors import ConfigError, ItemError, KilnError
from lorakiln.core.onnx_session import open_session
from lorakiln.core.records import TaggerScores
from lorakiln.tagging.models import LABEL_FORMATS, Label
from lorakiln.tagging.preprocess import load_for_tagger
from lorakiln.tagging.thresholds import keep_above_floor

DEFAULT_SIZE = 448
WD_CATEGORIES = {9: "rating", 0: "general", 4: "character"}


# -- labels ---------------------------------------------------------------------------
def read_label_rows(text: str, source: str) -> list[tuple[str, int]]:
    """(name, category code) per row of a `tag_id,name,category,count`-style CSV."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    cols = [c.strip() for c in (reader.fieldnames or [])]
    if "name" not in cols or "category" not in cols:
        raise ConfigError(source, f"expected a header with 'name' and 'category' columns "
                                  f"(tag_id,name,category,count); found {','.join(cols) or 'nothing'}")
    rows = []
    for n, row in enumerate(reader, 2):
        row = {(k or "").strip(): v for k, v in row.items()}
        try:
            rows.append(((row["name"] or "").strip(), int(str(row["category"]).strip())))
        except ValueError:
            raise ConfigError(source, f"line {n}: category {row['category']!r} is not a number") from None
    if not rows:
        raise ConfigError(source, "no tags in the labels file")
    return rows


@LABEL_FORMATS.register("wd")
def parse_wd_labels(text: str, source: str) -> list[Label]:
    """WD `selected_tags.csv`: 9 rating, 0 general, 4 character (anything else counts as general)."""
    return [Label(name, WD_CATEGORIES.get(code, "general")) for name, code in read_label_rows(text, source)]


# -- the session -----------------------------------------------------------------------
def pick_providers(device: str, available: Sequence[str]) -> list[str]:
    cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not cuda:
        raise KilnError("tag device 'cuda': this onnxruntime has no CUDA provider; "
                        "install onnxruntime-gpu, or set [tag] device = \"cpu\"")
    if device != "cpu" and cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def input_geometry(shape: Sequence, source: str) -> tuple[int, bool]:
    """(image size, batch fixed to 1) from an NHWC input shape such as ['batch', 448, 448, 3]."""
    if len(shape) != 4 or shape[3] != 3:
        raise ConfigError(source, f"expected an NHWC image input [batch, S, S, 3]; the model's is {list(shape)}")
    size = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else DEFAULT_SIZE
    return size, shape[0] == 1


class OnnxTagger:
    """One loaded tagger: `predict(batch)` -> probabilities, `scores(row)` -> TaggerScores."""

    def __init__(self, name: str, model_path: Path, labels: list[Label], device: str = "auto"):
        self.name, self.labels, self.source = name, labels, str(model_path)
        self.session, self._quiet = open_session(model_path, device)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.size, fixed = input_geometry(inp.shape, self.source)
        self.max_batch: int | None = 1 if fixed else None
        self.fallback: str | None = "the model's batch dimension is fixed to 1" if fixed else None
        self.output_name = self._pick_output()
        self._groups: dict[str, tuple[np.ndarray, list[str]]] = {}
        for cat in dict.fromkeys(lb.category for lb in labels):
            idx = [i for i, lb in enumerate(labels) if lb.category == cat and lb.name]
            self._groups[cat] = (np.array(idx, dtype=np.int64), [labels[i].name for i in idx])

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def _pick_output(self) -> str:
        outs = self.session.get_outputs()
        n = len(self.labels)
        fits = [o for o in outs if o.shape and o.shape[-1] == n]
        if fits:
            return fits[0].name
        if all(o.shape and isinstance(o.shape[-1], int) for o in outs):
            widths = ", ".join(str(o.shape[-1]) for o in outs)
            raise ConfigError(self.source, f"the model outputs {widths} scores but the labels file has {n} "
                                           "rows: the labels file does not belong to this model")
        return outs[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities [n, n_labels] for a prepared NHWC batch."""
        return run_batched(self, batch, self._run)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = np.asarray(self.session.run([self.output_name], {self.input_name: batch}, self._quiet)[0])
        if out.ndim != 2 or out.shape != (len(batch), len(self.labels)):
            raise KilnError(f"{self.source}: output shape {out.shape}, expected ({len(batch)}, {len(self.labels)})")
        return out

    def scores(self, probs: np.ndarray, floor: float) -> tuple[TaggerScores, dict[str, str]]:
        """Split one image's probabilities by category; keep what the floor allows."""
        kept: dict[str, dict[str, float]] = {}
        for cat, (idx, sub) in self._groups.items():
            if len(idx):
                kept[cat] = (dict(zip(sub, np.round(probs[idx].astype(float), 5).tolist()))
                             if cat == "rating" else keep_above_floor(sub, probs[idx], floor))
        general = {t: p for cat, d in kept.items() if cat not in ("rating", "character") for t, p in d.items()}
        cats = {t: cat for cat, d in kept.items() if cat not in ("rating", "character") for t in d}
        ts = TaggerScores(model=self.name, rating=kept.get("rating", {}), character=kept.get("character", {}),
                          general=dict(sorted(general.items(), key=lambda kv: -kv[1])))
        return ts, cats


# -- the pipeline ------------------------------------------------------------------------
def predict_files(
    paths: Sequence[Path], tagger: OnnxTagger, batch_size: int = 8, workers: int = 4
) -> Iterator[tuple[int, np.ndarray | ItemError]]:
    """(index, probabilities or ItemError) for each path: errors when found, results per batch.

    A thread pool decodes and prepares images ahead of the model (onnxruntime and Pillow
    release the GIL), so the model rarely waits on decoding; at most a few batches are in flight.
    """
    ahead = batch_size * 2 + workers
    todo = iter(enumerate(paths))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kiln-decode")
    window: deque = deque()

    def fill() -> None:
        for i, p in todo:
            window.append((i, pool.submit(load_for_tagger, Path(p), tagger.size)))
            if len(window) >= ahead:
                return

    try:
        fill()
        idx: list[int] = []
        arrays: list[np.ndarray] = []
        while window:
            i, fut = window.popleft()
            fill()
            try:
                arrays.append(fut.result())
                idx.append(i)
            except ItemError as e:
                yield i, e
            except Exception as e:  # an unexpected decoder failure is still one item's problem
                yield i, ItemError(str(paths[i]), f"cannot prepare for tagging: {e}")
            if len(idx) == batch_size or (not window and idx):
                yield from zip(idx, tagger.predict(np.stack(arrays)))
                idx, arrays = [], []
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
