"""Continuing a training run: what --resume will do, which run it takes, and what changed since.

The run keeps the config it started with; these say so, and which run is continued, before
the model loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from lorakiln.core.errors import KilnError
from lorakiln.services.train import TrainPlan, TrainRequest, plan_training, request_from_project
from lorakiln.train.run import RunDir, find_run, resumable


def resume_point(run: RunDir) -> str:
    """What --resume will do with `run`, said before the model loads."""
    from lorakiln.train.state import list_states

    state = list_states(run.states_dir)[-1].name
    step = int(state.removeprefix("step-")) if state.removeprefix("step-").isdigit() else None
    was = {"done": "finished", "interrupted": "interrupted"}.get(run.status(), run.status())
    at = f" at step {step}" if step is not None else ""
    return f"continuing run {run.id} ({was}) from its saved state{at}"


def _flat(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _shown(v: Any) -> str:
    return "unset" if v is None else json.dumps(v, default=str)


def resume_changes(project, run: RunDir, plan: TrainPlan, cli: Mapping[str, Any] | None = None) -> str | None:
    """What differs between the run being continued (its own config, `plan`) and what a fresh
    `kiln train` would use now: changed settings and a changed dataset. The run keeps its own
    config; this only says so, with the way to a new run. None when nothing differs."""
    parts = []
    try:
        fresh = plan_training(request_from_project(project, cli))
    except KilnError as e:
        fresh, parts = None, [f"a new run could not start with the current settings ({e})"]
    if fresh is not None:
        old, new = _flat(plan.config_doc()), _flat(fresh.config_doc())
        changed = [f"{k.removeprefix('train.')} = {_shown(new.get(k))} (the run keeps {_shown(old.get(k))})"
                   for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
        if changed:
            parts.append(f"{Path(fresh.request.config_source).name} now has {', '.join(changed)}")
    saved = (run.info().get("fingerprint") or {}).get("dataset")
    if saved and saved != plan.dataset_hash():
        parts.append("the dataset changed since the run started (images, captions or repeats)")
    if not parts:
        return None
    return "; ".join(parts) + ": the run continues as it started; use `kiln train` for a new run"


def resume_request(project, ref: str | None, cli: Mapping[str, Any] | None) -> tuple[TrainRequest, RunDir]:
    """Continue run `ref` (None = the newest run) with the config it was started with; a run that
    cannot be continued (no saved state, or being trained) is a clear error, never another run."""
    run = find_run(project.runs_dir, ref)
    resumable(run)
    doc = run.read_config()
    if "train" not in doc:
        raise KilnError(f"{run.root}: no config.resolved.toml [train] table; cannot resume this run")
    req = request_from_project(project, cli, base_config=doc["train"])
    saved = doc.get("project", {})
    req.trigger = list(saved.get("trigger", req.trigger))
    req.base = doc["train"].get("base") or saved.get("base") or req.base
    return req, run
