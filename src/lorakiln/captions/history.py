"""The caption edit history: caption_history.jsonl, one JSON object per line, append-only.

An application line: {"seq", "op", "args", "time", "changes": [{"id", "before", "after"}],
"config": [{"section", "key", "before", "after", "had_before"}]}. An undo line:
{"seq", "op": "undo", "undoes": [seq, ...], "time"}. A line cut short by a kill is ignored
and cut off before the next append, so the file always reads as whole entries.

Undo restores each changed image's `before` list, newest application first, so undoing N
applications gives back exactly the captions before the oldest of them; images added later
are not in any entry and are left alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from lorakiln.core.errors import KilnError

HISTORY_FILE = "caption_history.jsonl"


@dataclass(frozen=True)
class Change:
    id: str
    before: list[str] | None
    after: list[str] | None


@dataclass(frozen=True)
class ConfigChange:
    section: str
    key: str
    before: Any
    after: Any
    had_before: bool


@dataclass(frozen=True)
class Entry:
    seq: int
    op: str
    time: str
    args: dict[str, Any] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    config: list[ConfigChange] = field(default_factory=list)
    undoes: list[int] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping) -> "Entry":
        return cls(
            seq=int(d["seq"]), op=str(d["op"]), time=str(d.get("time", "")), args=dict(d.get("args") or {}),
            changes=[Change(**c) for c in d.get("changes") or []],
            config=[ConfigChange(**c) for c in d.get("config") or []],
            undoes=[int(s) for s in d.get("undoes") or []],
        )

    def to_json(self) -> str:
        d: dict[str, Any] = {"seq": self.seq, "op": self.op, "time": self.time, "args": self.args,
                             "changes": [c.__dict__ for c in self.changes],
                             "config": [c.__dict__ for c in self.config], "undoes": self.undoes}
        return json.dumps({k: v for k, v in d.items() if v or k in ("seq", "op", "time")},
                          ensure_ascii=False, separators=(",", ":"))


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def active(entries: Iterable[Entry]) -> list[Entry]:
    """Applications not undone, oldest first."""
    entries = list(entries)
    undone = {s for e in entries if e.op == "undo" for s in e.undoes}
    return [e for e in entries if e.op != "undo" and e.seq not in undone]


def undo_targets(entries: list[Entry], n: int) -> list[Entry]:
    """The `n` most recent active applications, newest first."""
    act = active(entries)
    if n < 1:
        raise KilnError("undo needs N >= 1")
    if not act:
        raise KilnError("nothing to undo: the caption history is empty")
    if n > len(act):
        raise KilnError(f"cannot undo {n}: only {len(act)} caption edit(s) in the history")
    return list(reversed(act[-n:]))


def restore_plan(targets: list[Entry]) -> tuple[dict[str, list[str] | None], dict[tuple[str, str], ConfigChange]]:
    """Captions and config values to restore for `targets` (newest first): the oldest `before` wins."""
    captions: dict[str, list[str] | None] = {}
    config: dict[tuple[str, str], ConfigChange] = {}
    for e in targets:
        for c in e.changes:
            captions[c.id] = c.before
        for c in e.config:
            config[(c.section, c.key)] = c
    return captions, config


def consolidations(entries: Iterable[Entry]) -> list[tuple[list[str], str]]:
    """(descriptor tags, new tag) of every consolidate still in effect (outfit triggers for cards)."""
    return [(list(e.args.get("tags", [])), str(e.args.get("into", ""))) for e in active(entries) if e.op == "consolidate"]


class History:
    """The JSONL file; reading skips a torn last line, appending first cuts it off."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # torn by a kill: never written completely
                try:
                    out.append(Entry.from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise KilnError(f"{self.path}: a line is not a caption history entry; fix or remove it") from None
        return out

    def next_seq(self) -> int:
        return max((e.seq for e in self.entries()), default=0) + 1

    def append(self, entry: Entry) -> Entry:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        data = (entry.to_json() + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _cut_torn_tail(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
