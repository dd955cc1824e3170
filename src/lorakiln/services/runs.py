"""`kiln runs list` / `kiln runs compare`: the project's training runs and what changed between them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.compare import RunSummary, compare, flatten
from lorakiln.formats.lora_file import read_metadata, tensor_hash
from lorakiln.train.run import RunDir, all_runs

_EPOCH = re.compile(r"-(\d{6})\.safetensors$")
_STEP = re.compile(r"-step(\d{8})\.safetensors$")


@dataclass(frozen=True)
class Checkpoint:
    label: str  # "epoch 3", "step 500", "final": the names the grid's checkpoint axis accepts
    path: Path
    epoch: int | None = None  # from the file name, else from its ss_epoch metadata
    step: int | None = None
    kind: str = "epoch"  # what the file name says: "epoch", "step" or "final"

    @property
    def order(self) -> tuple:
        """Training order: by epoch where known; within an epoch step saves, then the epoch file,
        then the final file; files of unknown epoch after those, steps before finals."""
        rank = {"step": 0, "epoch": 1}.get(self.kind, 2)
        return (0 if self.epoch is not None else 1, self.epoch or 0, rank, self.step or 0)

    @property
    def title(self) -> str:
        """The label, with the epoch where the name does not say it: "final (epoch 3)"."""
        return f"{self.label} (epoch {self.epoch})" if self.kind != "epoch" and self.epoch is not None else self.label


def _hash(path: Path) -> str:
    """The tensors' own hash: a stored sshs_model_hash survives metadata edits of another file."""
    try:
        return tensor_hash(path)
    except KilnError:
        return path.name


def _meta_int(path: Path, key: str) -> int | None:
    """An integer from the file's metadata (ss_epoch, ss_steps), None when absent or unreadable."""
    try:
        v = read_metadata(path).get(key)
    except KilnError:
        return None
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def run_checkpoints(root: Path) -> list[Checkpoint]:
    """The LoRA files of a run folder in training order; a final file identical to the last
    checkpoint (same tensor hash) is left out. Files not named by epoch (the final file, step
    checkpoints) take their epoch from their ss_epoch metadata."""
    found = []
    for p in sorted(Path(root).glob("*.safetensors")):
        if m := _EPOCH.search(p.name):
            found.append(Checkpoint(f"epoch {int(m.group(1))}", p, epoch=int(m.group(1))))
        elif m := _STEP.search(p.name):
            found.append(Checkpoint(f"step {int(m.group(1))}", p, _meta_int(p, "ss_epoch"), int(m.group(1)), "step"))
        else:
            found.append(Checkpoint("final", p, _meta_int(p, "ss_epoch"), _meta_int(p, "ss_steps"), "final"))
    finals = [c for c in found if c.kind == "final"]
    if len(finals) > 1:
        found = [c for c in found if c.kind != "final"] + [Checkpoint(c.path.stem, c.path, c.epoch, c.step, "final")
                                                           for c in finals]
    found.sort(key=lambda c: (c.order, c.path.name))
    numbered = [c for c in found if c.kind != "final"]
    if numbered:
        last = _hash(numbered[-1].path)
        found = [c for c in found if c in numbered or _hash(c.path) != last]
    return found


def find_run_dir(project, ref: str | None) -> RunDir:
    """A run by id or path; None = the newest run that has a LoRA file."""
    runs_dir = project.runs_dir
    if ref:
        for cand in (Path(ref), runs_dir / ref):
            if cand.is_dir() and (any(cand.glob("*.safetensors")) or (cand / "run.json").is_file()):
                return RunDir(cand)
        raise KilnError(f"no run {ref!r} in {runs_dir} (see `kiln runs list`)")
    runs = [r for r in all_runs(runs_dir) if any(r.root.glob("*.safetensors"))]
    if not runs:
        raise KilnError(f"no run with a LoRA file in {runs_dir}; train first (`kiln train`)")
    return runs[-1]


def _eval_summary(run: RunDir) -> dict | None:
    p = run.root / "eval" / "summary.json"
    try:
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None
    except json.JSONDecodeError:
        return None


def list_runs(project) -> list[dict[str, Any]]:
    out = []
    for run in all_runs(project.runs_dir):
        info = run.info()
        cps = run_checkpoints(run.root)
        rec = (_eval_summary(run) or {}).get("recommended")
        out.append({"id": run.id, "status": run.status(info), "output_name": info.get("output_name"),
                    "family": info.get("family"), "steps": info.get("steps"), "checkpoints": len(cps),
                    "recommended": rec})
    return out


def summarize_run(run: RunDir) -> RunSummary:
    from lorakiln.evaluate.dataset_tags import tag_shares
    from lorakiln.merge.info import dataset_dirs, tag_frequency

    info = run.info()
    cps = run_checkpoints(run.root)
    meta = read_metadata(cps[-1].path) if cps else {}
    dirs = dataset_dirs(meta)
    images = sum(int(d.get("img_count", 0)) for d in dirs.values()) or None
    s = RunSummary(run.id, run.status(info), info.get("output_name") or "", len(cps),
                   flatten(run.read_config()), meta.get("lorakiln_dataset_hash")
                   or (info.get("fingerprint") or {}).get("dataset"), images,
                   tag_shares(tag_frequency(meta), images or 0) if meta else {})
    summary = _eval_summary(run)
    if summary:
        s.recommended = summary.get("recommended")
        s.findings = [f.get("message", "") for f in summary.get("findings", [])]
        s.metrics = _recommended_metrics(run, s.recommended)
    return s


def _recommended_metrics(run: RunDir, rec: dict | None) -> dict[str, float | None]:
    p = run.root / "eval" / "metrics.json"
    if not rec or not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    for c in doc.get("candidates", []):
        if c.get("checkpoint") == rec.get("checkpoint") and c.get("weight") == rec.get("weight"):
            return {k: v.get("value") for k, v in c.get("metrics", {}).items()}
    return {}


def compare_runs(project, refs: list[str] | None = None) -> dict[str, Any]:
    """Runs given (ids or paths), else every run of the project, oldest first."""
    runs = [find_run_dir(project, r) for r in refs] if refs else all_runs(project.runs_dir)
    if not runs:
        raise KilnError(f"no runs in {project.runs_dir}")
    return compare([summarize_run(r) for r in runs])
