"""kiln run: the whole journey from project.toml, resumable."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, out


def run(
    until: Annotated[Optional[str], typer.Option(help="Stop after this stage (e.g. caption for the dataset half).")] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="Start at this stage.")] = None,
    force: Annotated[bool, typer.Option(help="Redo work already done (downloads, training).")] = False,
    list_stages: Annotated[bool, typer.Option("--list", help="List the stages in order and exit.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Run fetch, import, dedupe, filter, tag, caption, plan, export, train, eval and card in order.

    Stages already done are skipped; a killed run resumes where it stopped; the first stage
    that fails stops the run with its message. [run] in project.toml says what to import and
    skip and which caption steps to apply."""
    from lorakiln.services.pipeline import ORDER, run_pipeline

    if list_stages:
        out.print(" -> ".join(ORDER))
        return
    p = open_project(project, write=True)

    def show(res) -> None:
        mark = "[dim]skip[/]" if res.skipped else "[green]done[/]"
        out.print(f"{mark} [bold]{res.stage:8}[/] {escape(res.summary)}", soft_wrap=True)  # summaries name [tables]
        for n in res.notes:
            out.print(f"         [yellow]{escape(n)}[/]", soft_wrap=True)

    run_pipeline(p, RichProgress(), start=start, until=until, force=force, on_result=show)


def register(app: typer.Typer) -> None:
    app.command()(run)
