"""Where a tagger's files come from: a local folder, or a hub repo at a revision (HF cache).

`identify` names the tagger without touching disk or network (so stored scores can be reused
without loading anything); `locate` finds its files; `load_tagger` opens the ONNX session.
With HF_HUB_OFFLINE set, only files already in the cache are used; the same when the hub
cannot be reached at all (one quick connection test instead of huggingface_hub's six retries
with backoff, 20-35 s on an offline machine). A missing model is a KilnError naming the files
expected and where to put them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lorakiln.core.errors import KilnError
from lorakiln.core.hub import hub_endpoint, hub_offline, hub_reachable  # noqa: F401  (hub_offline: re-exported)
from lorakiln.tagging import e621 as _e621  # noqa: F401  (registers the e621 label format)
from lorakiln.tagging.models import (
    E621_LABELS,
    LABEL_FORMATS,
    MODEL_FILE,
    TAGGERS,
    WD_LABELS,
    TaggerSpec,
    find_by_repo,
)
from lorakiln.tagging.wd import OnnxTagger

_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelFiles:
    spec: TaggerSpec
    model: Path
    labels: Path
    origin: str  # "folder /x" or "hub owner/name@commit", for messages and the run summary


def identify(model: str, local_models: Mapping[str, str] | None = None,
             root: Path | None = None) -> tuple[TaggerSpec, Path | None]:
    """(spec, local folder or None) for a registered name, a folder path or a hub repo id."""
    local_models = local_models or {}
    spec = TAGGERS.get(model) if model in TAGGERS else None
    if spec is None and not _looks_like_path(model, root):
        spec = find_by_repo(model)
        if spec is None and _REPO_RE.match(model):
            spec = TaggerSpec(name=model, repo_id=model)
    if spec is not None:
        folder = local_models.get(spec.name)
        return spec, (_abs(folder, root) if folder else None)
    folder = _abs(model, root)
    if folder.is_dir() or os.sep in model or "/" in model or model.startswith("."):
        return _folder_spec(folder), folder
    raise KilnError(f"unknown tagger {model!r}: give a registered name ({', '.join(TAGGERS.names())}), "
                    "a hub repo id (owner/name) or a folder holding model.onnx + selected_tags.csv")


def locate(spec: TaggerSpec, folder: Path | None, cache_dir: str | None = None) -> ModelFiles:
    """The model and labels files on disk, downloading from the hub unless offline."""
    if folder is not None:
        missing = [f for f in spec.files if not (folder / f).is_file()]
        if missing:
            raise KilnError(
                f"tagger {spec.name}: {', '.join(missing)} missing in {folder}; that folder must hold "
                f"{' + '.join(spec.files)} (download them from "
                f"https://huggingface.co/{spec.repo_id or 'the model page'})")
        return ModelFiles(spec, folder / spec.model_file, folder / spec.labels_file, f"folder {folder}")
    if spec.repo_id is None:  # pragma: no cover - folder specs always come with a folder
        raise KilnError(f"tagger {spec.name}: no hub repo and no local folder")
    return _from_hub(spec, cache_dir)


def load_tagger(files: ModelFiles, device: str = "auto") -> OnnxTagger:
    parse = LABEL_FORMATS.get(files.spec.label_format)
    try:
        text = files.labels.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KilnError(f"{files.labels}: cannot read the labels file: {e}") from None
    return OnnxTagger(files.spec.name, files.model, parse(text, str(files.labels)), device)


def _from_hub(spec: TaggerSpec, cache_dir: str | None) -> ModelFiles:
    from huggingface_hub import constants, hf_hub_download

    offline = hub_offline()
    endpoint = hub_endpoint()
    unreachable = not offline and not hub_reachable(endpoint)
    got: list[Path] = []
    try:
        for f in spec.files:
            got.append(Path(hf_hub_download(spec.repo_id, f, revision=spec.revision, cache_dir=cache_dir,
                                            local_files_only=offline or unreachable, endpoint=endpoint)))
    except Exception as e:  # hub errors come in many types; each gets the same clear advice
        cache = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
        why = f"{endpoint} cannot be reached from this machine and the files are not in the cache" if unreachable else None
        raise KilnError(_missing_message(spec, cache, offline, e, why)) from None
    commit = got[0].parent.name if got[0].parent.parent.name == "snapshots" else spec.revision
    return ModelFiles(spec, got[0], got[1], f"hub {spec.repo_id}@{commit}")


def _missing_message(spec: TaggerSpec, cache: Path, offline: bool, e: Exception, why: str | None = None) -> str:
    why = why or ("not in the local cache (HF_HUB_OFFLINE is set)" if offline else _hub_reason(e))
    files = " + ".join(spec.files)
    repo_dir = cache / f"models--{spec.repo_id.replace('/', '--')}"
    return (
        f"tagger {spec.name}: cannot get {files} from {spec.repo_id} (revision {spec.revision}): {why}. "
        f"Either put them in the Hugging Face cache {repo_dir} (on a connected machine: "
        f"`hf download {spec.repo_id} {' '.join(spec.files)} --revision {spec.revision}`, then copy the cache), "
        f"or put {files} in a folder and set `local_models = {{ \"{spec.name}\" = \"/path/to/folder\" }}` "
        f"under [tag] in project.toml, or pass `kiln tag --model /path/to/folder`."
    )


def _folder_spec(folder: Path) -> TaggerSpec:
    """An unregistered local folder: WD labels if present, else Z3D's e621 labels."""
    e621 = (folder / E621_LABELS).is_file() and not (folder / WD_LABELS).is_file()
    return TaggerSpec(
        name=f"local:{folder.name}", labels_file=E621_LABELS if e621 else WD_LABELS,
        label_format="e621" if e621 else "wd", model_file=MODEL_FILE,
    )


def _looks_like_path(model: str, root: Path | None) -> bool:
    return model.startswith((".", "/", "~")) or os.sep in model.replace("/", "") or _abs(model, root).is_dir()


def _abs(path: str, root: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or root is None else (root / p)


def _hub_reason(e: Exception) -> str:
    from huggingface_hub import errors

    reasons = [
        (errors.LocalEntryNotFoundError, "the hub could not be reached and the files are not in the cache"),
        (errors.RevisionNotFoundError, "that revision does not exist"),
        (errors.RepositoryNotFoundError, "repository not found (or private: set HF_TOKEN)"),
        (errors.EntryNotFoundError, "the file is not in that repository"),
    ]
    for cls, why in reasons:
        if isinstance(e, cls):
            return why
    return _short(e)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
