"""events.jsonl: an append-only log of what a run did (step, loss, lr, saves, samples).

A resumed run first rewinds the log to the state it continues from: the events a killed process
wrote after its last saved state describe work the resumed process does again, so they are cut
(atomically) and a "resume" event says how many were cut and how far the killed process had got.
Every step therefore appears once, and in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass
class Rewound:
    kept: int  # events kept (up to the state's step)
    dropped: int  # events cut: work after the state, done again by the resumed process
    reached: int | None  # the furthest step the cut events had reached (None: nothing was cut)


def _past(event: dict, step: int) -> bool:
    """Is this event after the state at `step`? (a later step, or the end of a finished process)"""
    s = event.get("step")
    return event.get("kind") == "end" or (isinstance(s, (int, float)) and not isinstance(s, bool) and s > step)


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, kind: str, **data: Any) -> dict:
        event = {"t": round(time.time(), 3), "kind": kind, **data}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, default=str) + "\n")
        return event

    def rewind(self, step: int) -> Rewound:
        """Keep the events up to the state at `step`; cut everything from the first event past it
        (and any line a kill left half-written, which the next append would otherwise run into)."""
        from lorakiln.core.atomic import write_text

        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines() if self.path.exists() else []
        events = [e for e in map(_parse, lines) if e is not None]
        cut = next((i for i, e in enumerate(events) if _past(e, step)), len(events))
        kept, gone = events[:cut], events[cut:]
        if gone or len(events) != sum(1 for x in lines if x.strip()):
            write_text(self.path, "".join(json.dumps(e, default=str) + "\n" for e in kept))
        steps = [e["step"] for e in gone if isinstance(e.get("step"), int)]
        return Rewound(len(kept), len(gone), max(steps) if steps else None)

    def read(self) -> Iterator[dict]:
        """Yield events; a line cut short by a kill is skipped."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                event = _parse(line)
                if event is not None:
                    yield event


def _parse(line: str) -> dict | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
