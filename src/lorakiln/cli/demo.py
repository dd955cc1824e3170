"""kiln demo: the whole journey offline on bundled tiny data and a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorakiln.cli.common import RichProgress, out


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the demo project.")] = Path("demo-out"),
) -> None:
    """Run the main job end to end, offline, on bundled tiny data and a tiny model."""
    from lorakiln.services.demo import run_demo

    proj = run_demo(directory, RichProgress(), log=lambda line: out.print(line, markup=False, soft_wrap=True))
    out.print(f"[bold green]demo done[/]: {proj.root}")


def register(app: typer.Typer) -> None:
    app.command()(demo)
