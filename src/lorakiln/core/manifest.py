"""manifest.jsonl: one ImageRecord per line, rewritten atomically.

A line that cannot be parsed (hand edits, disk trouble) is reported with its line number;
loading never guesses.
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
        for r in records:
            self._records[r.id] = r

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        path = Path(path)
        m = cls(path)
        if not path.exists():
            return m
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = ImageRecord.model_validate(json.loads(line))
                except (json.JSONDecodeError, ValidationError) as e:
                    raise ConfigError(path, f"line {n} is not a valid record: {_short(e)}") from None
                m._records[rec.id] = rec
        return m

    def save(self) -> None:
        with atomic_open(self.path, "w") as fh:
            for r in self._records.values():
                fh.write(r.model_dump_json(exclude_defaults=True) + "\n")

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

    def __init__(self, manifest: Manifest, every: float = 2.0):
        self.manifest = manifest
        self.every = every
        self._last = time.monotonic()

    def tick(self) -> None:
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        self.manifest.save()
        self._last = time.monotonic()

    def __enter__(self) -> "ManifestSaver":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _reason_key(reason: str | None) -> str:
    """Group reasons by their first word(s) before ':' so the funnel stays short."""
    if not reason:
        return "unknown"
    return reason.split(":", 1)[0].strip()


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:200]
