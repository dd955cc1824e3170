"""Character-similarity backends: CCIP when its ONNX files are present, honest fallbacks otherwise.

Every backend turns pictures into feature rows and feature rows into a difference matrix
(lower = more alike), and knows its same-character threshold when it has one:

    ccip        deepghs CCIP (reference §1.1): model_feat.onnx (RGB 384x384 bilinear, CLIP mean/std,
                NCHW) -> 768-d features; model_metrics.onnx maps a stack of features to the pairwise
                difference matrix; threshold from metrics.json. Files from the hub repo
                deepghs/ccip_onnx (<model>/...) or a local folder, loaded like the taggers.
    tagger      the WD tagger's probability vector (its embedding output when the model has one);
                difference = 1 - cosine. Sees tags (hair, eyes, clothes), a coarse identity proxy.
    descriptor  colour + layout + texture statistics (evaluate/descriptor.py); always available,
                weakest: it sees palettes, not identity.

Without a threshold (tagger, descriptor) the metrics calibrate one from the reference pictures
(evaluate/metrics/fidelity.py), so "same character" means "as close as the dataset's own pictures".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.registry import Registry
from lorakiln.evaluate import descriptor

CCIP_REPO = "deepghs/ccip_onnx"
CCIP_FILES = ("model_feat.onnx", "model_metrics.onnx", "metrics.json")
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


class Embedder(Protocol):
    id: str  # stable name for caches and the report, e.g. "ccip:ccip-caformer-24-randaug-pruned"
    kind: str
    threshold: float | None
    origin: str

    def features(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def differences(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


class DescriptorEmbedder:
    kind = "descriptor"
    id = f"descriptor:{descriptor.VERSION}"
    threshold = None
    origin = "built in"

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack([descriptor.describe(im) for im in images]) if images else np.zeros((0, 1), np.float32)

    def differences(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return descriptor.cosine_differences(a, b)


class TaggerEmbedder:
    """Any object with `predict(NHWC batch)`, `size` and `name` (tagging.wd.OnnxTagger)."""

    kind = "tagger"
    threshold = None

    def __init__(self, tagger, origin: str = ""):
        self.tagger = tagger
        self.id = f"tagger:{tagger.name}"
        self.origin = origin or tagger.name

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        from lorakiln.tagging.preprocess import prepare

        if not images:
            return np.zeros((0, 1), np.float32)
        return np.asarray(self.tagger.predict(np.stack([prepare(im, self.tagger.size) for im in images])),
                          dtype=np.float32)

    def differences(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return descriptor.cosine_differences(a, b)


def ccip_preprocess(img: Image.Image, size: int = 384) -> np.ndarray:
    """RGB, bilinear resize to size x size, 0-1, CLIP mean/std, CHW float32."""
    arr = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    return ((arr - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1).astype(np.float32)


class CcipEmbedder:
    kind = "ccip"

    def __init__(self, name: str, folder_or_files: dict[str, Path], origin: str, threshold: float | None = None,
                 device: str = "auto"):
        import onnxruntime as ort

        from lorakiln.tagging.wd import pick_providers

        self.id, self.origin = f"ccip:{name}", origin
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        providers = pick_providers(device, ort.get_available_providers())
        self.feat = self._session(ort, folder_or_files["model_feat.onnx"], opts, providers)
        self.metrics = self._session(ort, folder_or_files["model_metrics.onnx"], opts, providers)
        shape = self.feat.get_inputs()[0].shape
        self.size = shape[-1] if isinstance(shape[-1], int) and shape[-1] > 0 else 384
        self.threshold = threshold if threshold is not None else _read_threshold(folder_or_files["metrics.json"])

    @staticmethod
    def _session(ort, path: Path, opts, providers):
        try:
            return ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime's own types
            raise ConfigError(path, f"cannot load the ONNX model: {str(e).splitlines()[0][:300]}") from None

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, 768), np.float32)
        batch = np.stack([ccip_preprocess(im, self.size) for im in images])
        inp = self.feat.get_inputs()[0].name
        return np.asarray(self.feat.run(None, {inp: batch})[0], dtype=np.float32)

    def differences(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if len(a) == 0 or len(b) == 0:
            return np.zeros((len(a), len(b)), np.float32)
        stack = np.concatenate([a, b]).astype(np.float32)
        inp = self.metrics.get_inputs()[0].name
        full = np.asarray(self.metrics.run(None, {inp: stack})[0], dtype=np.float32)
        return full[: len(a), len(a):]


def _read_threshold(path: Path) -> float:
    try:
        return float(json.loads(Path(path).read_text(encoding="utf-8"))["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(path, f"cannot read the CCIP threshold (a JSON object with \"threshold\"): {e}") from None


# -- locating CCIP files -----------------------------------------------------------------------

def locate_ccip(model: str, local: str | None = None, revision: str = "main", cache_dir: str | None = None,
                cache_only: bool = False) -> tuple[str, dict[str, Path], str]:
    """(model name, {file: path}, origin) from a local folder or the hub (HF cache; offline-capable).
    `cache_only` never goes to the network (what embedder = "auto" does)."""
    folder = Path(local).expanduser() if local else (Path(model).expanduser() if Path(model).expanduser().is_dir()
                                                      else None)
    if folder is not None:
        missing = [f for f in CCIP_FILES if not (folder / f).is_file()]
        if missing:
            raise KilnError(f"CCIP: {', '.join(missing)} missing in {folder}; that folder must hold "
                            f"{' + '.join(CCIP_FILES)} (from https://huggingface.co/{CCIP_REPO}/tree/main/<model>)")
        return folder.name, {f: folder / f for f in CCIP_FILES}, f"folder {folder}"
    from huggingface_hub import hf_hub_download

    from lorakiln.core.hub import hub_offline, hub_reachable

    unreachable = not (hub_offline() or cache_only) and not hub_reachable()
    offline = hub_offline() or cache_only or unreachable
    try:
        got = {f: Path(hf_hub_download(CCIP_REPO, f"{model}/{f}", revision=revision, cache_dir=cache_dir,
                                       local_files_only=offline)) for f in CCIP_FILES}
    except Exception as e:  # hub errors come in many types; the advice is the same
        why = (("not in the local cache (embedder \"auto\" never downloads; set embedder = \"ccip\" to "
                "download it)" if cache_only else "not in the local cache (the hub cannot be reached)"
                if unreachable else "not in the local cache (HF_HUB_OFFLINE is set)")
               if offline else f"{type(e).__name__}")
        raise KilnError(
            f"CCIP model {model}: cannot get {' + '.join(CCIP_FILES)} from {CCIP_REPO}/{model} "
            f"(revision {revision}): {why}. On a connected machine run `hf download {CCIP_REPO} "
            f"--include '{model}/*'` and copy the Hugging Face cache, or put the three files in a folder and set "
            f"[eval.models] ccip_local = \"/path/to/folder\".") from None
    return model, got, f"hub {CCIP_REPO}/{model}@{revision}"


# -- choosing ----------------------------------------------------------------------------------

@dataclass
class Backend:
    """A located (not yet loaded) backend: its id and threshold are known before any model runs,
    so cached features can be reused without loading anything."""

    id: str
    kind: str
    threshold: float | None
    origin: str
    factory: Callable[[], Embedder]
    _loaded: Embedder | None = None

    def load(self) -> Embedder:
        if self._loaded is None:
            self._loaded = self.factory()
        return self._loaded


Resolver = Callable[[], Backend]  # raises KilnError with the reason when the backend is unavailable
BACKENDS: Registry[str] = Registry("character embedder")
for _name, _note in (("ccip", "deepghs CCIP ONNX (reference)"), ("tagger", "WD tagger output vector"),
                     ("descriptor", "colour/layout/texture statistics (always available)")):
    BACKENDS.register(_name, _note)


def descriptor_backend() -> Backend:
    e = DescriptorEmbedder()
    return Backend(e.id, e.kind, None, e.origin, lambda: e)


def ccip_backend(model: str, local: str | None, revision: str, cache_dir: str | None, threshold: float | None,
                 device: str, cache_only: bool = False) -> Backend:
    name, files, origin = locate_ccip(model, local, revision, cache_dir, cache_only)
    thr = threshold if threshold is not None else _read_threshold(files["metrics.json"])
    return Backend(f"ccip:{name}", "ccip", thr, origin, lambda: CcipEmbedder(name, files, origin, thr, device))


def choose_backend(wanted: str, resolvers: dict[str, Resolver]) -> tuple[Backend, list[str]]:
    """The backend asked for, or with 'auto' the first of ccip, tagger, descriptor that is available;
    the notes say why better ones were not used."""
    order = ["ccip", "tagger", "descriptor"] if wanted == "auto" else [wanted]
    notes: list[str] = []
    for name in order:
        BACKENDS.get(name)
        resolver = resolvers.get(name) or (descriptor_backend if name == "descriptor" else None)
        try:
            if resolver is None:
                raise KilnError("no such model configured")
            return resolver(), notes
        except KilnError as e:
            if wanted != "auto":
                raise
            notes.append(f"{name} not used: {e}")
    return descriptor_backend(), notes
