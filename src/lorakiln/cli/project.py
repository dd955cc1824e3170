"""kiln init / kiln status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, open_project, out


def init(
    name: Annotated[str, typer.Argument(help="Project name; also the folder created (unless --dir).")],
    trigger: Annotated[list[str], typer.Option("--trigger", "-t", help="Trigger word (repeat for several).")],
    base: Annotated[Optional[str], typer.Option(help="Base model: preset name, .safetensors file, folder or hub id.")] = None,
    character: Annotated[Optional[str], typer.Option(help="The character's booru tag, if any.")] = None,
    directory: Annotated[Optional[Path], typer.Option("--dir", help="Folder to create (default: ./NAME).")] = None,
) -> None:
    """Create a project folder: project.toml, manifest.jsonl, images/."""
    from lorakiln.services.project import init_project

    p = init_project(directory or Path(name), name, trigger, base=base, character=character)
    out.print(f"created project [bold]{p.info.name}[/] in {p.root}")


def status(project: ProjectOpt = None) -> None:
    """The funnel per subset: fetched, duplicates, filtered out by reason, kept."""
    p = open_project(project)
    funnel = p.manifest().funnel()
    out.print(f"[bold]{p.info.name}[/]  trigger: {', '.join(p.info.trigger)}  base: {p.info.base or '-'}")
    _print_activity(p.root)
    if not funnel:
        out.print("no images yet: `kiln fetch SITE QUERY` or `kiln import FOLDER`")
        return
    for subset, c in sorted(funnel.items()):
        t = Table(title=f"subset {subset}", show_header=True, header_style="bold")
        t.add_column("stage")
        t.add_column("images", justify="right")
        t.add_row("total", str(c["total"]))
        for key in sorted(k for k in c if k not in ("total", "kept")):
            t.add_row(f"  {key}", str(c[key]))
        t.add_row("[green]kept[/]", f"[green]{c['kept']}[/]")
        out.print(t)
    from lorakiln.services.export_record import dataset_problem

    if (problem := dataset_problem(p)) is not None:  # training reads dataset/: say when it is partial or stale
        out.print(escape(problem.message), style="yellow" if problem.severity == "warning" else "red")


def _print_activity(root) -> None:
    """Who is writing the project now, and an update a killed process left for the next writer."""
    from lorakiln.core import journal, lock

    holder = lock.current_holder(root)
    if holder is not None:
        out.print(escape(f"being written by {holder.describe()}"), style="yellow")
    todo = journal.pending(root)
    if todo is not None and holder is None:
        out.print(escape(f"`{todo.what}` was interrupted; the next kiln command that writes the project finishes it"),
                  style="yellow")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(status)
