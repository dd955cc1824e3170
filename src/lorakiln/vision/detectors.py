"""The anime detectors kiln knows (deepghs, reference/datasets.md §2.1) and how to load one.

Each hub repo holds one folder per model (`{model}/model.onnx`); the labels are in the ONNX
metadata (`names`), so model.onnx is the only file needed. Defaults are imgutils' own
(detect_person, detect_heads, detect_halfbody): model, conf and IoU thresholds. The revision
is "main": no commit is pinned yet, because none could be checked from here (no network);
pin one with `revision=` once a model is verified.

A model comes from a local folder (holding model.onnx, or {model}/model.onnx) or from the
hub at the revision, through the Hugging Face cache; offline (HF_HUB_OFFLINE, or the hub not
reachable) only the cache is read. A missing model is a KilnError naming the file and where
to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lorakiln.core.errors import KilnError
from lorakiln.core.hub import hub_endpoint, hub_offline, hub_reachable
from lorakiln.core.registry import Registry
from lorakiln.tagging.loading import _hub_reason
from lorakiln.vision.yolo import YoloDetector

MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class DetectorSpec:
    kind: str
    repo_id: str
    model: str  # default model folder in the repo
    conf: float
    iou: float
    labels: tuple[str, ...]  # used only when the model has no `names` metadata
    revision: str = "main"
    notes: str = ""


DETECTORS: Registry[DetectorSpec] = Registry("detector")
DETECTORS.register("person", DetectorSpec(
    "person", "deepghs/anime_person_detection", "person_detect_v1.1_m", 0.3, 0.5, ("person",),
    notes="whole persons; YOLOv8 on AniDet3; levels n/s/m/x, versions v0/v1/v1.1"))
DETECTORS.register("head", DetectorSpec(
    "head", "deepghs/anime_head_detection", "head_detect_v2.0_s", 0.4, 0.7, ("head",),
    notes="heads; YOLOv8/YOLO11"))
DETECTORS.register("halfbody", DetectorSpec(
    "halfbody", "deepghs/anime_halfbody_detection", "halfbody_detect_v1.0_s", 0.5, 0.7, ("halfbody",),
    notes="upper bodies; trained mostly on single-person pictures (split persons first)"))


def locate_detector(spec: DetectorSpec, model: str | None = None, local_dir: Path | str | None = None,
                    cache_dir: str | None = None, revision: str | None = None) -> tuple[Path, str]:
    """(path of model.onnx, origin for messages) from a local folder or the hub."""
    model = model or spec.model
    if local_dir is not None:
        folder = Path(local_dir).expanduser()
        for cand in (folder / MODEL_FILE, folder / model / MODEL_FILE):
            if cand.is_file():
                return cand, f"folder {cand.parent}"
        raise KilnError(
            f"{spec.kind} detector {model}: no {MODEL_FILE} in {folder} (nor in {folder / model}); download "
            f"{model}/{MODEL_FILE} from https://huggingface.co/{spec.repo_id} and put it there")
    return _from_hub(spec, model, revision or spec.revision, cache_dir)


def load_detector(kind: str, model: str | None = None, local_dir: Path | str | None = None, *,
                  cache_dir: str | None = None, revision: str | None = None, device: str = "auto",
                  conf: float | None = None, iou: float | None = None, dynamic: bool = False) -> YoloDetector:
    """A ready detector of one kind (person, head, halfbody) with imgutils' default thresholds."""
    spec = DETECTORS.get(kind)
    path, origin = locate_detector(spec, model, local_dir, cache_dir, revision)
    det = YoloDetector(f"{spec.kind}:{model or spec.model}", path, spec.conf if conf is None else conf,
                       spec.iou if iou is None else iou, spec.labels, device, dynamic)
    det.origin = origin
    return det


def _from_hub(spec: DetectorSpec, model: str, revision: str, cache_dir: str | None) -> tuple[Path, str]:
    from huggingface_hub import constants, hf_hub_download

    offline = hub_offline()
    endpoint = hub_endpoint()
    unreachable = not offline and not hub_reachable(endpoint)
    filename = f"{model}/{MODEL_FILE}"
    try:
        path = Path(hf_hub_download(spec.repo_id, filename, revision=revision, cache_dir=cache_dir,
                                    local_files_only=offline or unreachable, endpoint=endpoint))
    except Exception as e:  # hub errors come in many types; each gets the same clear advice
        cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
        why = (f"{endpoint} cannot be reached from this machine and the file is not in the cache" if unreachable
               else "not in the local cache (HF_HUB_OFFLINE is set)" if offline else _hub_reason(e))
        raise KilnError(_missing_message(spec, model, revision, cache, why)) from None
    snap = path.parent.parent
    commit = snap.name if snap.parent.name == "snapshots" else revision
    return path, f"hub {spec.repo_id}@{commit}"


def _missing_message(spec: DetectorSpec, model: str, revision: str, cache: Path, why: str) -> str:
    repo_dir = cache / f"models--{spec.repo_id.replace('/', '--')}"
    return (
        f"{spec.kind} detector {model}: cannot get {model}/{MODEL_FILE} from {spec.repo_id} "
        f"(revision {revision}): {why}. Either put it in the Hugging Face cache {repo_dir} (on a connected "
        f"machine: `hf download {spec.repo_id} {model}/{MODEL_FILE} --revision {revision}`, then copy the "
        f"cache), or put {MODEL_FILE} in a folder of your own and load it from there (local_dir)."
    )
