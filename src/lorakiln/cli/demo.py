"""kiln demo: the whole journey offline, in the toy world (default) or on the tiny noise model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lorakiln.cli.common import RichProgress, out


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the demo project.")] = Path("demo-out"),
    world: Annotated[str, typer.Option("--world", help=(
        "toy: the toy world, where the LoRA learns the held-out character kie_(kiln) on the pretrained "
        "toy 64x64 base and the evaluation can see her (1-2 minutes on a CPU); tiny: the mechanics only, "
        "on random-weight tiny models whose pictures are noise (under a minute)."))] = "toy",
) -> None:
    """Run the main job end to end, offline, on bundled toy data and a toy model."""
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
