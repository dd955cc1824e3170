"""A run folder: runs/<run-id>/ with its resolved config, events, checkpoints, samples and states.

    runs/20260101-120000-kafka/
      run.json               status (running/done), fingerprint, output name, times
      config.resolved.toml   every setting the run used (unset values are omitted)
      events.jsonl           step, epoch, loss, lr, it/s, saves, samples, warnings
      kafka-000001.safetensors ...   checkpoints, kohya naming (-step00000500 for step saves)
      kafka.safetensors      the final LoRA
      samples/               sample images with their prompts
      state/step-00000123/   resumable training states
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit

from lorakiln.core import lock
from lorakiln.core.atomic import write_json, write_text
from lorakiln.core.errors import KilnError
from lorakiln.core.events import EventLog
from lorakiln.train.state import list_states

RUN_FILE = "run.json"
INTERRUPTED = "interrupted"
CONFIG_FILE = "config.resolved.toml"


def _toml_ready(value: Any) -> Any:
    """Drop None (TOML has no null), tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {k: _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_toml_ready(v) for v in value if v is not None]
    return value


@dataclass
class RunDir:
    root: Path

    @property
    def id(self) -> str:
        return self.root.name

    @property
    def events(self) -> EventLog:
        return EventLog(self.root / "events.jsonl")

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    @property
    def states_dir(self) -> Path:
        return self.root / "state"

    def info(self) -> dict:
        p = self.root / RUN_FILE
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

    def status(self, info: dict | None = None) -> str:
        """run.json's status, except that a "running" run no process trains (it holds no run lock:
        killed, or the machine went down) is "interrupted"."""
        status = str((self.info() if info is None else info).get("status", "?"))
        if status == "running" and lock.current_holder(self.root) is None:
            return INTERRUPTED
        return status

    def last_step(self) -> int | None:
        """The last step events.jsonl logged (what a killed process reached)."""
        steps = [e["step"] for e in self.events.read() if e.get("kind") == "step" and isinstance(e.get("step"), int)]
        return steps[-1] if steps else None

    def update_info(self, **values: Any) -> dict:
        info = {**self.info(), **values}
        write_json(self.root / RUN_FILE, info)
        return info

    def write_config(self, sections: dict[str, Any], header: str = "") -> Path:
        doc = tomlkit.document()
        if header:
            for line in header.splitlines():
                doc.add(tomlkit.comment(line))
        for k, v in _toml_ready(sections).items():
            doc[k] = v
        path = self.root / CONFIG_FILE
        write_text(path, tomlkit.dumps(doc))
        return path

    def read_config(self) -> dict:
        p = self.root / CONFIG_FILE
        return tomlkit.parse(p.read_text(encoding="utf-8")).unwrap() if p.is_file() else {}

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint(self, output_name: str, epoch: int | None = None, step: int | None = None) -> Path:
        """kohya naming: NAME-000003.safetensors, NAME-step00000500.safetensors, NAME.safetensors."""
        if epoch is not None:
            return self.root / f"{output_name}-{epoch:06d}.safetensors"
        if step is not None:
            return self.root / f"{output_name}-step{step:08d}.safetensors"
        return self.root / f"{output_name}.safetensors"

    def checkpoints(self, output_name: str, kind: str = "epoch") -> list[Path]:
        pat = re.compile(re.escape(output_name) + (r"-\d{6}\.safetensors$" if kind == "epoch"
                                                   else r"-step\d{8}\.safetensors$"))
        return sorted(p for p in self.root.iterdir() if pat.match(p.name))

    def prune_checkpoints(self, output_name: str, kind: str, keep: int | None) -> list[Path]:
        """Keep the last `keep` epoch (or step) checkpoints; None keeps all."""
        if keep is None:
            return []
        files = self.checkpoints(output_name, kind)
        gone = files[: max(0, len(files) - keep)]
        for p in gone:
            p.unlink(missing_ok=True)
        return gone


def create_run(runs_dir: Path, output_name: str, now: datetime | None = None) -> RunDir:
    now = now or datetime.now()
    base = f"{now:%Y%m%d-%H%M%S}-{output_name}"
    root, n = Path(runs_dir) / base, 2
    while root.exists():
        root, n = Path(runs_dir) / f"{base}-{n}", n + 1
    root.mkdir(parents=True)
    return RunDir(root)


def all_runs(runs_dir: Path) -> list[RunDir]:
    """Runs oldest first (ids start with their creation time)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return [RunDir(p) for p in sorted(runs_dir.iterdir()) if (p / RUN_FILE).is_file()]


def find_run(runs_dir: Path, ref: str | None) -> RunDir:
    """A run by id or folder path; None = the newest run (whatever its state: the caller says what
    it can do with it, never quietly taking an older one)."""
    if ref:
        for cand in (Path(ref), Path(runs_dir) / ref):
            if (cand / RUN_FILE).is_file():
                return RunDir(cand)
        raise KilnError(f"no run {ref!r} in {runs_dir}")
    runs = all_runs(runs_dir)
    if not runs:
        raise KilnError(f"no run in {runs_dir} to resume; `kiln train` starts one")
    return runs[-1]


def resumable(run: RunDir) -> None:
    """Raise a clear error when `run` cannot be continued: no saved state, or another process trains it."""
    holder = lock.current_holder(run.root)
    if holder is not None:
        raise KilnError(f"run {run.id}: {holder.describe()} is training this run; let it finish, or stop it "
                        "before continuing the run")
    if list_states(run.states_dir):
        return
    status, step = run.status(), run.last_step()
    where = f" at step {step}" if step else ""
    what = {"done": "finished", INTERRUPTED: f"was interrupted{where}"}.get(status, status)
    raise KilnError(f"run {run.id} {what} and has no saved state to resume from (a state is saved with each "
                    "checkpoint, and every save_state_every_n_steps, while save_state is on): `kiln train --force` "
                    "trains it again as a new run")


def remove_run(run: RunDir) -> None:
    shutil.rmtree(run.root, ignore_errors=True)
