"""kiln import / dedupe / filter: thin commands over the dataset services."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, open_project_cache_writer, out


def import_(
    folder: Annotated[Path, typer.Argument(help="Folder of images (+ .txt captions, kohya N_name folders).")],
    subset: Annotated[Optional[str], typer.Option(help="Put every image in this subset.")] = None,
    copy: Annotated[Optional[bool], typer.Option("--copy/--link", help="Copy files (default) or link them.")] = None,
    force: Annotated[bool, typer.Option(help="Read files already imported again (captions, size, subset).")] = False,
    project: ProjectOpt = None,
) -> None:
    """Copy a folder of images you already have into the project; your files are never changed."""
    from lorakiln.services.importer import import_folder

    p = open_project(project, write=True)
    cfg = p.resolve("import", {"mode": None if copy is None else ("copy" if copy else "link")})
    r = import_folder(p, folder, cfg, RichProgress(), subset=subset, force=force)
    parts = [f"[green]{n} {what}[/]" if i == 0 else f"{n} {what}"  # each image counted once: they sum to found
             for i, (what, n) in enumerate(r.outcomes()) if n or i == 0]
    if r.already_bad:
        parts = [f"{p} ({r.already_bad} of them with a problem)" if p.endswith("already imported") else p
                 for p in parts]
    tail = [f"{r.unread_folders} folder(s) not read" if r.unread_folders else "",
            f"{r.other_files} other files skipped" if r.other_files else ""]
    out.print(f"found {r.found} images: {', '.join(parts)}" + "".join(f"; {t}" for t in tail if t))
    for name, n in sorted(r.subsets.items()):
        out.print(f"  subset {escape(name)}: {n} usable")
    for path, why in r.errors:  # file names like `[bold]a.png` are shown as they are
        out.print(f"  [red]error[/] {escape(path)}: {escape(why)}")
    for path, why in r.notes:
        out.print(f"  note {escape(path)}: {escape(why)}")


def dedupe(
    threshold: Annotated[Optional[int], typer.Option(help="Largest hash distance counted as a near-duplicate.")] = None,
    show: Annotated[bool, typer.Option(help="List the duplicate groups: ids, sizes, distances.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Find groups but drop nothing (use with --show).")] = False,
    force: Annotated[bool, typer.Option(help="Restore earlier duplicate drops, rehash and decide again.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Drop exact and near-duplicate images, keeping the best of each group."""
    from lorakiln.services.dedupe import run_dedupe

    if dry_run:  # its hashes are cached unless another command is writing the project
        p, cache = open_project_cache_writer(project)
    else:
        p, cache = open_project(project, write=True), True
    cfg = p.resolve("dedupe", {"threshold": threshold})
    r = run_dedupe(p, cfg, RichProgress(), force=force, dry_run=dry_run, save_hashes=cache)
    exact = sum(d.kind == "exact" for d in r.decisions)
    verb = "would drop" if dry_run else "dropped"
    tail = (f"; {r.restored} restored" if r.restored else "")
    tail += f"; [red]{len(r.errors)} errors[/]" if r.errors else ""
    out.print(f"{r.considered} images: hashed {r.hashed}, {r.cached} from cache; {verb} {exact} exact and "
              f"{len(r.decisions) - exact} near duplicates ({cfg.hash} distance <= {cfg.threshold}){tail}")
    for rid, why in r.errors:
        out.print(f"  [red]error[/] {rid}: {why}")
    if show:
        _print_groups(r.groups)


def _print_groups(groups) -> None:
    if not groups:
        out.print("no duplicate groups")
    for n, g in enumerate(groups, 1):
        t = Table(title=f"group {n}: {1 + len(g.dropped)} images", title_justify="left", header_style="bold")
        for col in ("", "id", "size", "score", "kind", "distance"):
            t.add_column(col)
        t.add_row("[green]keep[/]", g.keep.id, _size(g.keep), _txt(g.keep.score), "", "")
        for m in g.dropped:
            t.add_row("drop", m.record.id, _size(m.record), _txt(m.record.score), m.kind, _txt(m.distance))
        out.print(t)


def _size(r) -> str:
    return f"{r.width}x{r.height}" if r.width and r.height else "-"


def _txt(v) -> str:
    return "-" if v is None else str(v)


def filter_(
    undo: Annotated[Optional[str], typer.Option(
        help="Restore images dropped by this filter (a prefix: mono, 'too small', tags...).")] = None,
    force: Annotated[bool, typer.Option(help="Restore all filter drops and judge every image again.")] = False,
    list_: Annotated[bool, typer.Option(
        "--list", help="Show the filters in the order they run, with their settings.")] = False,
    identity: Annotated[Optional[bool], typer.Option(
        "--identity/--no-identity", help="Drop pictures that are not the main character (CCIP).")] = None,
    identity_threshold: Annotated[Optional[float], typer.Option(
        help="Largest CCIP difference from the main character kept (default: the model's).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Judge and report, but change and save nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Drop images no training run should see: animated, too small, bad aspect, tag rules, monochrome,
    other characters (--identity), cap."""
    from lorakiln.services import filter as svc

    p = open_project(project, write=not list_)
    cfg = p.resolve("filter", {"identity": identity, "identity_threshold": identity_threshold})
    if list_:
        return _list_filters(cfg)
    if undo is not None:
        back = svc.undo(p, undo)
        if not back:
            known = ", ".join(f"{k} ({n})" for k, n in sorted(svc.filter_reasons(p.manifest()).items())) or "none"
            out.print(f"nothing dropped by a filter matching {undo!r}; filter drops: {known}")
        else:
            out.print(f"restored {len(back)} images (later runs of `kiln filter` keep them; --force forgets this)")
        return
    from lorakiln.config.tag import TagConfig

    r = svc.run_filter(p, cfg, RichProgress(), tag_cfg=p.resolve("tag", model=TagConfig), force=force,
                       dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    out.print(f"{r.considered} images judged by {', '.join(r.filters)}: {verb} {len(r.dropped)}"
              + (f"; {r.restored} earlier drops restored" if r.restored else "")
              + (" (dry run: nothing saved)" if dry_run else ""))
    for label, n in sorted(r.by_filter().items()):
        out.print(f"  {label}: {n}")
    for note in r.notes:
        out.print(escape(f"  {note}"))
    if dry_run:
        for rid, why in r.dropped:
            out.print(escape(f"  {rid}: {why}"))
    for was, now, why in r.rekept:
        out.print(escape(f"  kept {now} instead of its duplicate {was} ({why})"))
    for was, copies in r.lost:
        out.print(escape(f"  {was} is dropped and no duplicate of it passes the filters: "
                         f"{', '.join(copies)} judged on their own (reasons above)"))
    if r.untagged:
        out.print(f"  {r.untagged} images have no tags yet: tag rules judge them after `kiln tag` "
                  "and another `kiln filter`")
    for rid, why in r.errors:
        out.print(f"  [red]error[/] {rid}: {why}")


def _list_filters(cfg) -> None:
    from lorakiln.dataset.filters import FILTER_ORDER, FILTERS, build_filters

    on = {f.name: f for f in build_filters(cfg)}
    t = Table(header_style="bold")
    for col in ("#", "filter", "reason prefix", "setting"):
        t.add_column(col)
    for n, name in enumerate(FILTER_ORDER, 1):
        f = on.get(name)
        t.add_row(str(n), name, FILTERS.get(name).label, f.describe() if f else "[dim]off[/]")
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command()(dedupe)
    app.command("filter")(filter_)
