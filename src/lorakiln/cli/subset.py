"""kiln subset move / list / undo: thin commands over services.subset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, open_project, out

subset_app = typer.Typer(
    help="Subsets (concepts, outfits, views): each becomes its own dataset folder with its own repeats.",
    no_args_is_help=True,
)

_SHOW = 10  # ids listed per group in the output


@subset_app.command("move")
def move(
    to: Annotated[str, typer.Option("--to", help="Subset to move the images into (created if new).")],
    id_: Annotated[Optional[list[str]], typer.Option("--id", help="Image id to move (repeatable).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(
        "--tag", help="Move images having this tag (repeatable: all of them); the caption if set, "
                      "else booru and tagger tags.")] = None,
    from_: Annotated[Optional[str], typer.Option(
        "--from", help="Only images now in this subset (alone: the whole subset).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would move; change nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Move images into another subset; `kiln subset undo` puts them back."""
    from lorakiln.config.tag import TagConfig
    from lorakiln.services import subset as svc

    p = open_project(project, write=not dry_run)
    r = svc.move(p, to, ids=id_, tags=tag, from_subset=from_, tag_cfg=p.resolve("tag", model=TagConfig),
                 dry_run=dry_run)
    verb = "would move" if dry_run else "moved"
    out.print(f"{verb} {len(r.moved)} images to subset [bold]{escape(to)}[/] ({r.kept} kept)"
              + (f"; {len(r.already)} already there" if r.already else ""))
    froms: dict[str, list[str]] = {}
    for rid, before in r.moved:
        froms.setdefault(before, []).append(rid)
    for before, rids in sorted(froms.items()):
        out.print(f"  from {escape(before)}: {len(rids)}: {escape(_ids(rids))}")
    if r.missing:
        out.print(f"  [red]not in the manifest[/]: {escape(_ids(r.missing))}")
    if r.elsewhere:
        out.print(f"  [yellow]not in subset {escape(from_ or '')}[/], left alone: {escape(_ids(r.elsewhere))}")
    if r.moved and not dry_run:
        out.print(escape(f"`kiln plan` gives subset {to} its repeats (a subset of back views is kept under "
                         f"doctor's share; `--weight {to}=W` to choose); `kiln subset undo` reverts this move"))


@subset_app.command("list")
def list_(project: ProjectOpt = None) -> None:
    """Subsets with their kept and total image counts, and the repeats export gives them."""
    from lorakiln.services import subset as svc

    p = open_project(project)
    export = p.resolve("export")
    t = Table(header_style="bold")
    for col in ("subset", "kept", "total", "repeats"):
        t.add_column(col)
    rows = svc.counts(p)
    for c in rows:
        t.add_row(escape(c.name), str(c.kept), str(c.total), str(export.repeats_for(c.name)))
    if not rows:
        out.print("no images yet")
        return
    out.print(t)


@subset_app.command("undo")
def undo(project: ProjectOpt = None) -> None:
    """Put the images of the last move back in the subsets they came from."""
    from lorakiln.services import subset as svc

    r = svc.undo(open_project(project, write=True))
    out.print(f"undid move {r.seq} (to {escape(r.to)}): {len(r.restored)} images put back")
    backs: dict[str, int] = {}
    for _, before in r.restored:
        backs[before] = backs.get(before, 0) + 1
    for before, n in sorted(backs.items()):
        out.print(f"  to {escape(before)}: {n}")
    if r.changed_since:
        out.print(f"  [yellow]moved again since, left alone[/]: {escape(_ids(r.changed_since))}")
    if r.gone:
        out.print(f"  [yellow]no longer in the manifest[/]: {escape(_ids(r.gone))}")


def _ids(ids: list[str]) -> str:
    head = ", ".join(ids[:_SHOW])
    return head + (f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else "")


def register(app: typer.Typer) -> None:
    app.add_typer(subset_app, name="subset")
