"""A pending multi-file update, written before its first file and removed after its last.

Some edits change several files (a caption op changes manifest.jsonl, caption_history.jsonl
and project.toml's keep_tokens). Each file is replaced atomically, but a kill between two of
them would leave the project half-edited. So the whole intended result is written here first;
the next writer to take the project lock finds it and finishes the update (every step is
idempotent), then removes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorakiln.core.atomic import write_json
from lorakiln.core.errors import KilnError

JOURNAL_FILE = ".kiln-pending.json"


@dataclass(frozen=True)
class Pending:
    kind: str
    what: str  # the command, for messages
    payload: dict[str, Any]


def begin(root: Path, kind: str, what: str, payload: dict[str, Any]) -> None:
    write_json(Path(root) / JOURNAL_FILE, {"kind": kind, "what": what, "payload": payload})


def pending(root: Path) -> Pending | None:
    path = Path(root) / JOURNAL_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Pending(str(d["kind"]), str(d.get("what", d["kind"])), dict(d["payload"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise KilnError(f"{path}: an interrupted update's journal cannot be read ({e}); "
                        "check the project and remove the file") from None


def clear(root: Path) -> None:
    (Path(root) / JOURNAL_FILE).unlink(missing_ok=True)
