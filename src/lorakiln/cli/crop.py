"""kiln crop: close-ups of single-person pictures as derived records."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, out


def crop(
    framing: Annotated[Optional[list[str]], typer.Option("--framing", help=(
        "portrait, upper_body or cowboy_shot (repeat for several); default: \\[crop] framings."))] = None,
    min_side: Annotated[Optional[int], typer.Option(help="Smallest short side of a crop in pixels.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Detect and plan, write nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Decide every kept picture again, also those cropped before.")] = False,
    undo: Annotated[bool, typer.Option(help="Drop every crop record (kiln crop brings them back).")] = False,
    show: Annotated[bool, typer.Option(help="List each skipped crop with its reason.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Derive portrait, upper-body and cowboy-shot close-ups of single-person pictures."""
    from lorakiln.services.crop import run_crop, undo_crops

    p = open_project(project, write=not dry_run)
    if undo:
        r = undo_crops(p)
        out.print(f"{r.undone} crops dropped ({'crop: undone'}); run kiln crop to bring them back")
        return
    cfg = p.resolve("crop", {"framings": framing or None, "min_side": min_side})
    r = run_crop(p, cfg, RichProgress(), dry_run=dry_run, force=force)
    verb = "would make" if dry_run else "made"
    by = {f: sum(1 for _, g in r.made if g == f) for f in cfg.framings}
    shown = ", ".join(f"{n} {f}" for f, n in by.items())
    out.print(f"{r.considered} pictures looked at: {verb} {len(r.made)} crops ({shown}) in subset {cfg.subset!r}; "
              f"{len(r.skipped)} framings skipped; {len(r.not_single)} pictures without exactly one person"
              + (f"; {r.restored} undone crops restored" if r.restored else "")
              + (f"; [red]{len(r.errors)} errors[/]" if r.errors else ""))
    for rid, why in r.errors:
        out.print(f"  [red]error[/] {escape(rid)}: {escape(why)}")
    if show:
        for rid, f, why in r.skipped:
            out.print(f"  skip {escape(rid)} {f}: {escape(why)}")
        for rid, n in r.not_single:
            out.print(f"  skip {escape(rid)}: {n} persons")


def register(app: typer.Typer) -> None:
    app.command()(crop)
