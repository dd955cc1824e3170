"""kiln demo: the whole journey offline on bundled tiny data and a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorakiln.cli.common import RichProgress, out


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the demo project.")] = Path("demo-out"),
    world: Annotated[str, typer.Option("--world", help=(
        "tiny: the bundled tiny data and model; toy: the toy world, where the LoRA learns the held-out "
        "character kie_(kiln) on the toy 64x64 base (about a minute on a CPU)."))] = "tiny",
) -> None:
    """Run the main job end to end, offline, on bundled tiny data and a tiny model."""
    from lorakiln.core.errors import KilnError

    if world not in ("tiny", "toy"):
        raise KilnError(f"--world {world!r}: choose tiny or toy")
    if world == "toy":
        from lorakiln.services.demo_toy import run_toy_demo as run_demo
    else:
        from lorakiln.services.demo import run_demo

    proj = run_demo(directory, RichProgress(), log=lambda line: out.print(line, markup=False, soft_wrap=True))
    out.print(f"[bold green]demo done[/]: {proj.root}")


def register(app: typer.Typer) -> None:
    app.command()(demo)
