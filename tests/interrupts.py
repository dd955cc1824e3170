"""A Progress that stops a batch midway, the way Ctrl-C (or a kill) would, for resume tests."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

from lorakiln.core.progress import NullProgress


class StopAfter(NullProgress):
    """Raises `error` once `n` items of a task whose description contains `when` are done.

    `on_stop` runs just before (e.g. to snapshot the manifest as a kill -9 would leave it)."""

    def __init__(self, n: int, when: str = "", error: type[BaseException] = KeyboardInterrupt,
                 on_stop: Callable[[], None] | None = None):
        super().__init__()
        self.n, self.when, self.error, self.on_stop = n, when, error, on_stop

    @contextmanager
    def task(self, description: str, total: int | None = None):
        with super().task(description, total) as t:
            if self.when in description:
                inner = t.advance

                def advance(k: int = 1, **fields) -> None:
                    inner(k, **fields)
                    if t.done >= self.n:
                        if self.on_stop:
                            self.on_stop()
                        raise self.error

                t.advance = advance
            yield t
