"""dataset/.kiln-export.json: what the last `kiln export` wrote, so training can tell whether
dataset/ is whole and current.

An export marks the record "writing" before its first file and "complete", with a fingerprint
of what it wrote (every kept image's id, folder, file names and caption text: so the kept
records, captions and repeats), after its last. A kill in between leaves "writing": dataset/
holds part of an export. `dataset_problem` compares the record with what an export would write
now, without writing anything (`kiln train`, `kiln status`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lorakiln.core.atomic import write_json
from lorakiln.core.hashing import text_hash

RECORD_FILE = ".kiln-export.json"
FIX = "run `kiln export`"


def fingerprint(plan) -> str:
    """A hash of what dataset/ holds after an export of `plan` (ExportItems), order-free."""
    rows = sorted((it.id, it.image_rel, it.caption_rel, it.caption) for it in plan)
    return text_hash(json.dumps(rows, ensure_ascii=False))


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def planned_files(plan) -> dict[str, list[str]]:
    """Every file an export of `plan` writes: an image (no hash: it is the original's bytes) or a
    caption with the hash of its text, so a later export can tell a hand edit from its own."""
    files: dict[str, list[str]] = {}
    for it in plan:
        files[it.image_rel] = []
        files[it.caption_rel] = [content_hash(it.caption.encode("utf-8"))]
    return files


def known_files(record: dict | None) -> dict[str, set[str]] | None:
    """The files earlier exports wrote (with their caption hashes); None when no record lists them
    (no export yet, or one from before the list was kept): then no file is known to be kiln's."""
    files = (record or {}).get("files")
    if not isinstance(files, dict):
        return None
    return {str(k): {str(h) for h in v} for k, v in files.items() if isinstance(v, list)}


UNKNOWN_TEXT = "unknown"  # a caption hash no text has: kiln wrote the file, its text is not known


def legacy_known(dataset: Path, ids: set[str]) -> dict[str, set[str]]:
    """For a dataset/ exported before kiln listed its files: the files named after a manifest
    record (`<id>.png`, `<id>.txt`) are kiln's; their captions count as possibly hand-edited."""
    from lorakiln.captions.export import is_training_folder

    out: dict[str, set[str]] = {}
    for folder in Path(dataset).iterdir():
        if not (folder.is_dir() and is_training_folder(folder.name)):
            continue
        for f in folder.iterdir():
            if f.is_file() and f.name.split(".", 1)[0] in ids:
                out[f"{folder.name}/{f.name}"] = {UNKNOWN_TEXT} if f.suffix in (".txt", ".caption") else set()
    return out


def mark_writing(dataset: Path, known: dict[str, set[str]] | None = None, plan=()) -> None:
    """The record while an export writes: the files of the last export and of this one, so a kill
    in between leaves every file kiln may have written listed as kiln's."""
    files = {k: set(v) for k, v in (known or {}).items()}
    for rel, hashes in planned_files(plan).items():
        files.setdefault(rel, set()).update(hashes)
    write_json(Path(dataset) / RECORD_FILE, {"state": "writing", "started_at": time.time(),
                                             "files": {k: sorted(v) for k, v in sorted(files.items())}})


def mark_complete(dataset: Path, plan, res) -> None:
    write_json(Path(dataset) / RECORD_FILE, {
        "state": "complete", "fingerprint": fingerprint(plan), "images": sum(res.folders.values()),
        "not_written": len(res.skipped), "finished_at": time.time(), "files": planned_files(plan)})


def read_record(dataset: Path) -> dict | None:
    try:
        data = json.loads((Path(dataset) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class DatasetProblem:
    severity: Literal["error", "warning"]  # error: dataset/ is known to be partial
    message: str


def interrupted(folder: Path) -> DatasetProblem | None:
    """An error when `folder` holds an export record that says the export into it was interrupted
    (a --data folder, inside a project or not: the same check as the project's own dataset/)."""
    record = read_record(folder)
    if record is not None and record.get("state") == "writing":
        return DatasetProblem("error", f"{folder}: an export into it was interrupted, so it holds part of the "
                                       f"dataset; {FIX} to finish it")
    return None


def dataset_problem(project) -> DatasetProblem | None:
    """Why the project's dataset/ is not what `kiln export` would write now; None when it is (or
    when the project has no kept images, so dataset/ is the user's own folder)."""
    from lorakiln.services.export import ExportResult, _plan

    where = project.dataset_dir
    record = read_record(where)
    if (partial := interrupted(where)) is not None:
        return partial
    if not any(True for _ in project.manifest().kept()):
        return None
    plan, _ = _plan(project, project.resolve("export"), ExportResult())
    if not where.is_dir():
        return DatasetProblem("warning", f"{where} does not exist yet; {FIX}")
    if record is None:
        return DatasetProblem("warning", f"{where} was not written by a completed `kiln export`: it may not hold "
                                         f"the kept images and their captions; {FIX}")
    if record.get("fingerprint") != fingerprint(plan):
        return DatasetProblem("warning", f"{where} is out of date: kept images, captions or repeats changed "
                                         f"since the last export; {FIX}")
    if record.get("not_written"):
        return DatasetProblem("warning", f"{where}: the last export left out {record['not_written']} kept "
                                         "image(s) it could not find or write; `kiln export` names them")
    return None
