"""The `kiln` command. Each command module registers itself here with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lorakiln import __version__
from lorakiln.cli import common
from lorakiln.cli import demo as _demo
from lorakiln.cli import project as _project
from lorakiln.core.errors import KilnError

app = typer.Typer(
    name="kiln",
    help="lorakiln: pictures of a character in, a trained and tested LoRA out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    project: Annotated[
        Optional[Path], typer.Option("--project", "-p", help="Project folder for every command.")
    ] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"lorakiln {__version__}")
        raise typer.Exit()
    common.set_global_project(project)


# -- command modules (one line each) ------------------------------------------------
_project.register(app)
_demo.register(app)


def main() -> None:
    try:
        app()
    except KilnError as e:
        common.console.print(f"[bold red]error:[/] {e}")
        raise SystemExit(1)
    except KeyboardInterrupt:
        common.console.print("[yellow]interrupted; rerun the same command to resume[/]")
        raise SystemExit(130)
