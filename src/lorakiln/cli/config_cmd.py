"""kiln config import FILE / kiln config show [SECTION]."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, open_project, out
from lorakiln.core.errors import ProjectNotFound

config_app = typer.Typer(help="Import settings from kohya tools; show the resolved settings and their sources.",
                         no_args_is_help=True)


@config_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="kohya_ss GUI .json, LoRA Easy Training Scripts .toml, kohya dataset .toml "
                                              "or an sd-scripts config .toml.")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="kohya-gui, easy-scripts, dataset-toml or sd-scripts "
                                                                "(default: detected).")] = None,
    print_only: Annotated[bool, typer.Option("--print", help="Show the result; do not write project.toml.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Map a kohya config onto the project's sections: every key is reported as mapped, ignored (why) or unknown."""
    from lorakiln.services.config_import import import_config

    try:
        proj = open_project(project, write=not print_only)
    except ProjectNotFound:
        if not print_only:
            raise
        proj = None
    report, applied = import_config(file, proj, fmt, write=not print_only)
    if as_json:
        typer.echo(json.dumps({
            "format": report.format, "repairs": report.repairs, "notes": report.notes, "written": applied.written,
            "values": {".".join(p): v for p, v in report.values.items()},
            "entries": [vars(e) for e in report.entries]}, default=str, indent=2))
        return
    _print_report(report, applied, print_only)


def _print_report(report, applied, print_only: bool) -> None:
    out.print(f"[bold]{escape(report.path)}[/]: {escape(report.format)}")
    for r in report.repairs:
        out.print(f"[yellow]repaired:[/] {escape(r)}")
    for status, style in (("mapped", "green"), ("ignored", "yellow"), ("unknown", "red")):
        entries = report.by_status(status)
        out.print(f"[bold {style}]{status}[/] ({len(entries)})")
        for e in entries:
            if status == "mapped":
                out.print(f"  {escape(e.source)} -> {escape(e.target)} = {escape(repr(e.value))}")
            else:
                out.print(f"  {escape(e.source)}: {escape(e.reason)}")
    for n in report.notes:
        out.print(f"[yellow]note:[/] {escape(n)}")
    if applied.written:
        out.print(escape(applied.summary(len(report.by_status("mapped")))))
    elif print_only:
        out.print("--print: project.toml not changed")


@config_app.command("show")
def show(
    section: Annotated[Optional[str], typer.Argument(help="One section (train, plan, caption, ...); default: all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON: {section: {key: {value, source}}}.")] = False,
    project: ProjectOpt = None,
) -> None:
    """The resolved settings, each with its source: default, preset, project.toml or env."""
    from lorakiln.services.config_show import show as show_sections

    proj = open_project(project)
    result = show_sections(proj, section)
    if as_json:
        typer.echo(json.dumps({s: {k: {"value": v, "source": src} for k, v, src in rows}
                                   for s, rows in result.items()}, default=str, indent=2))
        return
    preset = (proj.preset().get("preset") or {}).get("name", "none")
    out.print(f"preset: [bold]{escape(preset)}[/] " + escape(f"(from [project].base = {proj.info.base})"))
    colours = {"default": "dim", "preset": "cyan", "project.toml": "green", "env": "magenta"}
    for name, rows in result.items():
        t = Table(title=escape(f"[{name}]"), show_header=True, header_style="bold", title_justify="left")
        for col in ("key", "value", "source"):
            t.add_column(col, overflow="fold")
        for key, value, src in rows:
            t.add_row(escape(key), escape(json.dumps(value, default=str)), f"[{colours[src]}]{src}[/]")
        out.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
