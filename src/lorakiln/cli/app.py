"""The `kiln` command. Each command module registers itself here with one line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from lorakiln import __version__
from lorakiln.cli import common
from lorakiln.cli import dataset as _dataset
from lorakiln.cli import subset as _subset
from lorakiln.cli import caption as _caption
from lorakiln.cli import demo as _demo
from lorakiln.cli import fetch as _fetch
from lorakiln.cli import project as _project
from lorakiln.cli import run as _run
from lorakiln.cli import train as _train
from lorakiln.cli import plan as _plan
from lorakiln.cli import presets as _presets
from lorakiln.cli import config_cmd as _config_cmd
from lorakiln.cli import tag as _tag
from lorakiln.cli import merge as _merge
from lorakiln.cli import lora as _lora
from lorakiln.cli import evaluate as _evaluate
from lorakiln.cli import crop as _crop
from lorakiln.core.errors import KilnError

# diffusers' pipelines import CLIP/SigLIP image processors we never use (no safety checker);
# without torchvision (not needed by lorakiln) transformers warns about it on every run
logging.getLogger("transformers.utils.import_utils").addFilter(
    lambda record: "requires torchvision" not in record.getMessage())

app = typer.Typer(
    name="kiln",
    help="lorakiln: pictures of a character in, a trained and tested LoRA out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    project: Annotated[
        Optional[Path], typer.Option("--project", "-p", help="Project folder for every command.")
    ] = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="If another kiln command is writing the project, wait for it instead of stopping.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"lorakiln {__version__}")
        raise typer.Exit()
    common.set_global_project(project)
    common.set_lock_wait(float("inf") if wait else 0.0)
    ctx.call_on_close(common.release_projects)  # also in-process (tests, later the web UI)


# -- command modules (one line each), in the order of the user's journey --------------
_project.register(app)
_fetch.register(app)
_dataset.register(app)
_crop.register(app)
_subset.register(app)
_tag.register(app)
_caption.register(app)
_plan.register(app)
_presets.register(app)
_config_cmd.register(app)
_train.register(app)
_lora.register(app)
_evaluate.register(app)
_merge.register(app)
_run.register(app)
_demo.register(app)


def main() -> None:
    try:
        app()
    except KilnError as e:
        common.console.print(f"[bold red]error:[/] {escape(str(e))}")
        raise SystemExit(1)
    except KeyboardInterrupt:
        common.console.print("[yellow]interrupted; rerun the same command to resume[/]")
        raise SystemExit(130)
