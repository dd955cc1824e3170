"""Training state: everything needed to continue a run exactly where it stopped.

A state is a folder `state/step-00000123/` with the trainable weights, the optimizer and
scheduler state, the RNG states (python, numpy, torch CPU and CUDA) and the data position.
It is written into a temporary folder and renamed into place, so a kill at any moment leaves
the previous state or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

STATE_PREFIX = "step-"


@dataclass
class Position:
    """Where training stands: `batch` batches of `epoch` are done, `step` optimizer steps in all."""

    epoch: int = 1
    batch: int = 0
    step: int = 0


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _save(obj, path: Path) -> None:
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_state(states_dir: Path, position: Position, *, weights: dict, optimizer: dict, scheduler: dict,
               extra: dict | None = None) -> Path:
    """Write a complete state folder atomically; returns its path."""
    states_dir = Path(states_dir)
    states_dir.mkdir(parents=True, exist_ok=True)
    final = states_dir / f"{STATE_PREFIX}{position.step:08d}"
    tmp = states_dir / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _save({k: v.detach().cpu() for k, v in weights.items()}, tmp / "weights.pt")
    _save({"optimizer": optimizer, "scheduler": scheduler, "rng": rng_state()}, tmp / "trainer.pt")
    with open(tmp / "position.json", "w", encoding="utf-8") as fh:
        json.dump({"position": asdict(position), "extra": extra or {}}, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    if final.exists():  # the same step saved again (e.g. after a resume): replace it
        old = states_dir / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(states_dir)
    return final


def list_states(states_dir: Path) -> list[Path]:
    """Complete states, oldest first (temporary folders of interrupted saves are ignored)."""
    states_dir = Path(states_dir)
    if not states_dir.is_dir():
        return []
    return sorted(p for p in states_dir.iterdir() if p.is_dir() and p.name.startswith(STATE_PREFIX)
                  and (p / "position.json").is_file())


def clean_partial_states(states_dir: Path) -> int:
    n = 0
    if Path(states_dir).is_dir():
        for p in Path(states_dir).iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


def prune_states(states_dir: Path, keep: int) -> list[Path]:
    states = list_states(states_dir)
    gone = states[: max(0, len(states) - keep)]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


@dataclass
class LoadedState:
    position: Position
    weights: dict
    optimizer: dict
    scheduler: dict
    rng: dict
    extra: dict


def load_state(path: Path) -> LoadedState:
    path = Path(path)
    meta = json.loads((path / "position.json").read_text(encoding="utf-8"))
    weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    trainer = torch.load(path / "trainer.pt", map_location="cpu", weights_only=True)
    return LoadedState(Position(**meta["position"]), weights, trainer["optimizer"], trainer["scheduler"],
                       trainer["rng"], meta.get("extra", {}))
