"""events.jsonl: an append-only log of what a run did (step, loss, lr, saves, samples)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **data: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **data}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=str) + "\n")
        return event

    def read(self) -> Iterator[dict]:
        """Yield events; a line cut short by a kill is skipped."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
