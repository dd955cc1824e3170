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
from rich.markup import escape
from rich.text import Text

console = Console(stderr=True, emoji=False)
out = Console(emoji=False)


def _flags_show_no_type() -> None:
    """typer 0.29's rich help prints a value type for every option, on/off flags included
    (`--force <bool>`, `--help <bool>`), though a flag takes no value; its plain help skips flags."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "skips_flags", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.skips_flags = True
    TyperOption.display_type_rich = display_type_rich


_flags_show_no_type()

ProjectOpt = Annotated[
    Optional[Path],
    typer.Option("--project", "-p", help="Project folder (default: the current folder or a parent)."),
]

_global_project: Path | None = None
_wait_for_lock = 0.0
_locked: list[Path] = []


def set_global_project(path: Path | None) -> None:
    global _global_project
    _global_project = path


def set_lock_wait(seconds: float) -> None:
    global _wait_for_lock
    _wait_for_lock = seconds


def project_path(option: Path | None) -> Path | None:
    return option if option is not None else _global_project


def open_project_cache_writer(option: Path | None):
    """(project, whether it may save caches): a read-only command that also caches work (a dry
    run's hashes) writes only when no other command is writing the project."""
    from lorakiln.core.lock import ProjectBusy
    from lorakiln.services.project import find_root, open_project as _open

    try:
        hold_project(find_root(project_path(option)), wait=0.0)
        free = True
    except ProjectBusy:
        free = False
    return _open(project_path(option)), free


def open_project(option: Path | None, write: bool = False):
    """The project; with `write`, this command becomes its only writer until it ends."""
    from lorakiln.services.project import find_root, open_project as _open

    if write:  # locked before reading, so what we read is what the previous writer left
        hold_project(find_root(project_path(option)))
    return _open(project_path(option))


def hold_project(root: Path, wait: float | None = None) -> None:
    """Take the project lock until the command ends, naming the command; then finish what a kill left."""
    from lorakiln.core import lock
    from lorakiln.services.recovery import finish_interrupted

    if lock.holds(root):
        return
    lock.acquire(root, lock.this_command(), wait=_wait_for_lock if wait is None else wait, on_wait=_say_waiting)
    _locked.append(root)
    for line in finish_interrupted(root):
        console.print(f"[yellow]{escape(line)}[/]")


def release_projects() -> None:
    """Give up the locks this command took (the root command calls this when it ends)."""
    from lorakiln.core import lock

    while _locked:
        lock.release(_locked.pop())


def _say_waiting(holder) -> None:
    who = holder.describe() if holder else "another kiln process"
    console.print(f"[yellow]waiting for {escape(who)} to finish writing this project[/]")


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
