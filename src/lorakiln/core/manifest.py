"""manifest.jsonl: one ImageRecord per line, rewritten atomically.

A line that cannot be parsed (hand edits, disk trouble) is reported with its line number;
loading never guesses.

Saving never overwrites a newer state: writers hold the project lock (core/lock.py), and if
the file changed on disk since it was loaded anyway (a hand edit, a process that did not take
the lock), `save` re-reads it and writes the records changed here on top of it, record by
record, so work saved meanwhile by someone else is kept.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import ValidationError

from lorakiln.core.atomic import atomic_open
from lorakiln.core.errors import ConfigError
from lorakiln.core.records import ImageRecord, Status


class Manifest:
    def __init__(self, path: Path, records: Iterable[ImageRecord] = ()):
        self.path = Path(path)
        self._records: dict[str, ImageRecord] = {}
        self._loaded: dict[str, str] = {}  # id -> its line as read, to tell what changed here
        self._stamp = _stamp(self.path)
        for r in records:
            self._records[r.id] = r

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        m = cls(path)
        for rec, line in _read(m.path):
            m._records[rec.id] = rec
            m._loaded[rec.id] = line
        return m

    def save(self) -> None:
        lines = {rid: r.model_dump_json(exclude_defaults=True) for rid, r in self._records.items()}
        if _stamp(self.path) != self._stamp:
            lines = self._merged(lines)
        with atomic_open(self.path, "w") as fh:
            for line in lines.values():
                fh.write(line + "\n")
        self._loaded = lines
        self._stamp = _stamp(self.path)

    def _merged(self, mine: dict[str, str]) -> dict[str, str]:
        """The file as it is on disk now, with the records this process changed or added on top."""
        out: dict[str, str] = {}
        for rec, line in _read(self.path):
            out[rec.id] = line
            if rec.id in self._records and not self._changed_here(rec.id, mine[rec.id]):
                self._records[rec.id] = rec  # keep the newer state in memory too
        for rid, line in mine.items():
            if rid not in out or self._changed_here(rid, line):
                out[rid] = line
        return out

    def _changed_here(self, rid: str, line: str) -> bool:
        before = self._loaded.get(rid)
        if before is None:
            return True
        if before == line:
            return False
        # the line as read may be spelled differently (an older writer); compare canonical forms
        canonical = ImageRecord.model_validate_json(before).model_dump_json(exclude_defaults=True)
        return canonical != line

    # -- access -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(list(self._records.values()))

    def __contains__(self, rid: object) -> bool:
        return rid in self._records

    def get(self, rid: str) -> ImageRecord | None:
        return self._records.get(rid)

    def __getitem__(self, rid: str) -> ImageRecord:
        return self._records[rid]

    def add(self, rec: ImageRecord) -> ImageRecord:
        """Insert or replace the record with this id."""
        self._records[rec.id] = rec
        return rec

    def kept(self, subset: str | None = None) -> list[ImageRecord]:
        return [r for r in self._records.values() if r.kept and (subset is None or r.subset == subset)]

    def subsets(self) -> list[str]:
        return sorted({r.subset for r in self._records.values()})

    def funnel(self) -> dict[str, Counter]:
        """Per subset: fetched, kept, and drops/errors by reason (what `kiln status` prints)."""
        out: dict[str, Counter] = {}
        for r in self._records.values():
            c = out.setdefault(r.subset, Counter())
            c["total"] += 1
            if r.status == Status.kept:
                c["kept"] += 1
            else:
                c[f"{r.status.value}: {_reason_key(r.reason)}"] += 1
        return out


class ManifestSaver:
    """Saves a manifest at most every `every` seconds during long batches, and at exit."""

    def __init__(self, manifest: Manifest, every: float = 2.0, enabled: bool = True):
        self.manifest = manifest
        self.every = every
        self.enabled = enabled  # False: a dry run, which writes nothing
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.enabled:
            self.manifest.save()
        self._last = time.monotonic()

    def __enter__(self) -> "ManifestSaver":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _read(path: Path) -> Iterator[tuple[ImageRecord, str]]:
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").strip()
                if not line:
                    continue
                rec = ImageRecord.model_validate(json.loads(line))
            except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as e:
                raise ConfigError(path, f"line {n} is not a valid record: {_short(e)}") from None
            yield rec, line


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells us the file was replaced or changed since we read it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _reason_key(reason: str | None) -> str:
    """Group reasons by their first word(s) before ':' so the funnel stays short."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200]
