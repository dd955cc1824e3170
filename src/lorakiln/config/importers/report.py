"""What an import found: every source key is mapped, ignored with a reason, or unknown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["mapped", "ignored", "unknown"]
_SECRET = re.compile(r"(api_?key|password|secret|credential|(^|_)token$)", re.I)


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


@dataclass
class Entry:
    source: str  # dotted key in the imported file
    status: Status
    target: str | None = None  # dotted key in project.toml
    value: Any = None  # the value written (None for ignored/unknown and for secrets)
    reason: str = ""


@dataclass
class ImportReport:
    format: str
    path: str
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)  # project.toml path -> value
    entries: list[Entry] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # what had to be fixed to read the file
    notes: list[str] = field(default_factory=list)

    def by_status(self, status: Status) -> list[Entry]:
        return [e for e in self.entries if e.status == status]

    def map(self, source: str, target: tuple[str, ...], value: Any, reason: str = "") -> None:
        prev = self.values.get(target)
        if target in self.values and prev != value:
            self.notes.append(f"{'.'.join(target)}: {source} = {value!r} replaces {prev!r} from an earlier key")
        self.values[target] = value
        self.entries.append(Entry(source, "mapped", ".".join(target), value, reason))

    def ignore(self, source: str, reason: str) -> None:
        self.entries.append(Entry(source, "ignored", reason=reason))

    def unknown(self, source: str) -> None:
        self.entries.append(Entry(source, "unknown", reason="not a key lorakiln knows; not imported"))

    def unmap(self, target: tuple[str, ...], reason: str) -> None:
        """Turn the entries that wrote `target` (or a key of its table) into ignored ones (their value
        did not validate)."""
        self.values.pop(target, None)
        dotted = ".".join(target)
        for e in self.entries:
            if e.status == "mapped" and e.target and (e.target == dotted or e.target.startswith(dotted + ".")):
                e.status, e.reason, e.value = "ignored", reason, None

    def unmap_item(self, target: tuple[str, ...], key: str, reason: str) -> None:
        """Drop one key of a table value (repeats = {main = 0, back = 3}: only main)."""
        table = {k: v for k, v in self.values[target].items() if k != key}
        if table:
            self.values[target] = table
        else:
            self.values.pop(target)
        dotted = ".".join((*target, key))
        for e in self.entries:
            if e.status == "mapped" and e.target == dotted:
                e.status, e.reason, e.value = "ignored", reason, None

    def sections(self) -> dict[str, dict]:
        """The values as nested tables: {"train": {"optimizer": {"unet_lr": ...}}}."""
        out: dict[str, dict] = {}
        for path, v in self.values.items():
            node = out
            for k in path[:-1]:
                node = node.setdefault(k, {})
            node[path[-1]] = v
        return out
