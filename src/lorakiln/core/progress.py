"""Progress reporting without printing: cores call `task.advance()`, the CLI shows it with rich.

Keeping this a tiny protocol lets the web UI (later) and tests plug in their own reporter.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class Task(Protocol):
    def advance(self, n: int = 1, **fields) -> None:
        """Count `n` items done; `fields` (loss=..., lr=...) are shown beside the bar."""

    def note(self, message: str) -> None:
        """A one-line message worth showing (a skipped item, a warning)."""


class Progress(Protocol):
    def task(self, description: str, total: int | None = None):  # -> ContextManager[Task]
        ...


class _NullTask:
    def __init__(self) -> None:
        self.done = 0
        self.fields: dict = {}
        self.notes: list[str] = []

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        self.fields.update(fields)

    def note(self, message: str) -> None:
        self.notes.append(message)


class NullProgress:
    """Collects counts and notes; used by tests and by library callers that want silence."""

    def __init__(self) -> None:
        self.tasks: dict[str, _NullTask] = {}

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[_NullTask]:
        t = _NullTask()
        self.tasks[description] = t
        yield t
