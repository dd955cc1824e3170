"""kiln presets list / show NAME / apply NAME."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, open_project, out

presets_app = typer.Typer(help="Settings per base model (and variants such as DoRA or Prodigy).", no_args_is_help=True)


@presets_app.command("list")
def list_() -> None:
    """The bundled presets: name, model family, aliases matched against [project].base, what they set."""
    from lorakiln.config.presets import all_presets

    t = Table(show_header=True, header_style="bold")
    for col in ("preset", "family", "matches base names", "description"):
        t.add_column(col, overflow="fold")
    for name, doc in sorted(all_presets().items()):
        meta = doc.get("preset") or {}
        parent = meta.get("variant_of")
        family = f"variant of {'any base' if parent == '*' else parent}" if parent else meta.get("family", "-")
        names = list(meta.get("aliases") or [])
        aliases = ", ".join(names[:4]) + (f" (+{len(names) - 4} more)" if len(names) > 4 else "")
        if parent:
            aliases = f"none: `kiln presets apply {name}`"
        t.add_row(escape(name), escape(family), escape(aliases), escape(meta.get("description", "")))
    out.print(t)


@presets_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Preset name, alias or base model file name.")]) -> None:
    """A preset's file as shipped: its settings with comments saying where they come from."""
    from lorakiln.services.config_import import preset_file_text

    typer.echo(preset_file_text(name))


@presets_app.command("apply")
def apply(
    name: Annotated[str, typer.Argument(help="Preset or variant to write into project.toml.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would change; write nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write a preset's settings into project.toml (how variants such as pony-v6-dora are chosen)."""
    from lorakiln.services.config_import import apply_preset

    applied = apply_preset(open_project(project, write=not dry_run), name, dry_run=dry_run)
    for key, old, new in applied.changes:
        mark = "unchanged" if old == new else ("set" if applied.written else "would set")
        out.print(f"{escape(key)}: {escape(repr(old)) if old is not None else '-'} -> {escape(repr(new))}  {mark}")


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets")
