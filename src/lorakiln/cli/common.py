"""Shared CLI pieces: the --project option, the console, and a rich progress reporter."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True, emoji=False)
out = Console(emoji=False)

ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("--project", "-p", help="Project folder (default: the current folder or a parent)."),
]

_global_project: Path | None = None


def set_global_project(path: Path | None) -> None:
    global _global_project
    _global_project = path


def project_path(option: Path | None) -> Path | None:
    return option if option is not None else _global_project


def open_project(option: Path | None):
    from lorakiln.services.project import open_project as _open

    return _open(project_path(option))


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("-- it/s", style="progress.data.speed")
        return Text(f"{speed:.2f} it/s" if speed < 100 else f"{speed:.0f} it/s", style="progress.data.speed")


class _FieldsColumn(ProgressColumn):
    def render(self, task) -> Text:
        f = task.fields.get("shown") or {}
        return Text("  ".join(f"{k}={_fmt(v)}" for k, v in f.items()), style="cyan")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _RichTask:
    def __init__(self, progress: Progress, task_id):
        self.p = progress
        self.id = task_id
        self.shown: dict = {}

    def advance(self, n: int = 1, **fields) -> None:
        self.shown.update(fields)
        self.p.update(self.id, advance=n, shown=dict(self.shown))

    def note(self, message: str) -> None:
        self.p.console.print(f"  [yellow]{message}[/]")


class RichProgress:
    """Shows items done/total, items/s, elapsed and ETA, and live fields such as loss."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[_RichTask]:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            _FieldsColumn(),
            console=console,
            disable=self.quiet,
            transient=False,
        ) as p:
            tid = p.add_task(description, total=total, shown={})
            yield _RichTask(p, tid)
