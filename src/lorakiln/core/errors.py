"""Errors the CLI turns into one clear line; library code raises, it never exits."""

from __future__ import annotations

from pathlib import Path


class KilnError(Exception):
    """A problem the user can fix; the message says what and where."""


class ProjectNotFound(KilnError):
    def __init__(self, where: Path):
        super().__init__(
            f"no lorakiln project in {where} (no project.toml); "
            "run `kiln init NAME --trigger WORD` or pass --project DIR"
        )


class ConfigError(KilnError):
    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


class ItemError(KilnError):
    """One item failed; batches record it with its reason and go on."""

    def __init__(self, item: str, problem: str):
        self.item = item
        self.problem = problem
        super().__init__(f"{item}: {problem}")
