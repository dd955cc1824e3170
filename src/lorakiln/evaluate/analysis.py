"""Pictures -> numbers, cached beside each picture (`<picture>.json`), so a rerun only analyses what is new.

Per picture: the style descriptor, background energy and a 32x32 pixel thumbnail (always; the
thumbnail says whether a LoRA changed the picture at all), the character features of
the chosen backend (keyed by its id), and the tagger's probabilities (keyed by its name,
probabilities >= TAG_FLOOR). A sidecar is rewritten atomically after each batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from lorakiln.core.atomic import write_text
from lorakiln.core.progress import Progress
from lorakiln.dataset.decode import load_rgb
from lorakiln.evaluate import descriptor
from lorakiln.evaluate.embed import Backend

TAG_FLOOR = 0.01


class TaggerHandle:
    """A located tagger, loaded on first use; `probs(images)` -> {tag: probability} per picture."""

    def __init__(self, name: str, files, device: str = "auto"):
        self.name, self.files, self.device = name, files, device
        self._tagger = None

    @property
    def tagger(self):
        if self._tagger is None:
            from lorakiln.tagging.loading import load_tagger

            self._tagger = load_tagger(self.files, self.device)
        return self._tagger

    def probs(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        from lorakiln.tagging.preprocess import prepare

        t = self.tagger
        out = t.predict(np.stack([prepare(im, t.size) for im in images]))
        names = [lb.name for lb in t.labels]
        return [{names[i]: round(float(row[i]), 4) for i in np.flatnonzero(row >= TAG_FLOOR)} for row in out]


def sidecar(path: Path) -> Path:
    return Path(str(path) + ".json")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def missing(doc: dict, backend: Backend | None, tagger: TaggerHandle | None) -> set[str]:
    need = set()
    style = doc.get("style") or {}
    if style.get("version") != descriptor.VERSION or "pixels" not in style:
        need.add("style")
    if backend is not None and backend.id not in (doc.get("features") or {}):
        need.add("features")
    if tagger is not None and tagger.name not in (doc.get("tags") or {}):
        need.add("tags")
    return need


def _fill(docs: list[dict], images: list[Image.Image], need: set[str], backend: Backend | None,
          tagger: TaggerHandle | None) -> None:
    if "style" in need:
        for d, im in zip(docs, images):
            d["style"] = {"version": descriptor.VERSION, "vector": descriptor.describe(im).round(5).tolist(),
                          "border": round(descriptor.border_energy(im), 4),
                          "pixels": descriptor.encode_thumbnail(descriptor.thumbnail(im))}
    if "features" in need and backend is not None:
        feats = backend.load().features(images)
        for d, f in zip(docs, feats):
            d.setdefault("features", {})[backend.id] = np.asarray(f, dtype=np.float32).round(6).tolist()
    if "tags" in need and tagger is not None:
        for d, p in zip(docs, tagger.probs(images)):
            d.setdefault("tags", {})[tagger.name] = p


def analyse(paths: Sequence[Path], backend: Backend | None, tagger: TaggerHandle | None, progress: Progress,
            title: str = "analyse", batch: int = 8, store: Callable[[Path], Path] = sidecar) -> dict[Path, dict]:
    """Analysis of every picture (cached parts reused); unreadable pictures are left out."""
    docs = {Path(p): _read(store(Path(p))) for p in paths}
    todo = [p for p, d in docs.items() if missing(d, backend, tagger)]
    if todo:
        with progress.task(title, total=len(todo)) as task:
            for i in range(0, len(todo), batch):
                chunk = todo[i:i + batch]
                need = set().union(*(missing(docs[p], backend, tagger) for p in chunk))
                ok, images = [], []
                for p in chunk:
                    try:
                        images.append(load_rgb(p))
                        ok.append(p)
                    except Exception as e:  # noqa: BLE001 - one bad picture never stops the batch
                        task.note(f"{p.name}: {e}")
                        docs.pop(p, None)
                if ok:
                    _fill([docs[p] for p in ok], images, need, backend, tagger)
                    for p in ok:
                        write_text(store(p), json.dumps(docs[p]))
                task.advance(len(chunk))
    return docs
