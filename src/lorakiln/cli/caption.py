"""kiln caption ... (edits with history and undo) and kiln export (the kohya training folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, out

caption_app = typer.Typer(
    help="Edit captions: every edit is recorded (`kiln caption history`) and can be undone (`kiln caption undo`).",
    no_args_is_help=True,
)

SubsetOpt = Annotated[Optional[str], typer.Option("--subset", "-s", help="Only images of this subset.")]
IdOpt = Annotated[Optional[List[str]], typer.Option("--id", help="Only this image id (repeat for several).")]
DryOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")]


def _session(project, write: bool = False):
    """A caption session; `write` (an edit, not a dry run) makes this process the project's writer."""
    from lorakiln.services.caption import Captions

    return Captions(open_project(project, write=write), progress=RichProgress(quiet=True))


def _sel(subset, ids):
    from lorakiln.services.caption import selection

    return selection(subset, ids or ())


def _report(c, res, dry_run: bool = False) -> None:
    verb = "would change" if dry_run else "changed"
    line = f"[bold]{res.op}[/]: {res.edited} of {res.selected} captions {verb}"
    if res.initialised:
        line += f" ({res.initialised} created from the image tags)"
    if res.seq is not None:
        line += f"  [dim]history #{res.seq}; `kiln caption undo` reverts it[/]"
    out.print(line)
    for ch in res.examples:
        out.print(f"  [cyan]{ch.id}[/]")
        out.print(f"    [red]- {escape(c.text(ch.before or []))}[/]")
        out.print(f"    [green]+ {escape(c.text(ch.after or []))}[/]")
    for cc in res.config:
        out.print(escape(f"  project.toml [{cc.section}] {cc.key} = {cc.after!r}") + (" (dry run)" if dry_run else ""))
    for n in res.notes:
        out.print(f"  [yellow]{escape(n)}[/]")


@caption_app.command()
def trigger(
    words: Annotated[Optional[List[str]], typer.Argument(help="Trigger word(s); default [caption].trigger or [project].trigger.")] = None,
    class_token: Annotated[Optional[List[str]], typer.Option("--class", help="Class token written after the trigger (repeat).")] = None,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Put the trigger word(s) first and record keep_tokens for training."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    _report(c, svc.trigger(c, words or (), class_token, _sel(subset, ids), dry_run), dry_run)


@caption_app.command()
def remove(
    tags: Annotated[Optional[List[str]], typer.Argument(help="Exact tags to remove.")] = None,
    glob: Annotated[Optional[List[str]], typer.Option("--glob", help="Glob on the tag, e.g. '*_(artist)' (repeat).")] = None,
    regex: Annotated[Optional[List[str]], typer.Option("--regex", help="Regular expression the whole tag matches (repeat).")] = None,
    category: Annotated[Optional[List[str]], typer.Option("--category", help="Tag category: artist, meta, copyright, ... (repeat).")] = None,
    preset: Annotated[Optional[List[str]], typer.Option("--preset", help="Named blacklist (--list-presets) (repeat).")] = None,
    list_presets: Annotated[bool, typer.Option("--list-presets", help="List the named blacklists and exit.")] = False,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Remove tags by name, glob, regex, category or named blacklist (the trigger is kept unless named)."""
    if list_presets:
        from lorakiln.captions.ops import blacklist_presets

        for name, b in sorted(blacklist_presets().items()):
            out.print(f"[bold]{name}[/] ({len(b.tags)} tags): {b.description}")
        return
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    res = svc.remove(c, tags or (), glob or (), regex or (), category or (), preset or (), _sel(subset, ids), dry_run)
    _report(c, res, dry_run)


@caption_app.command("prune-core")
def prune_core(
    tags: Annotated[Optional[List[str]], typer.Argument(help="Tags to prune; default: the ones --suggest marks.")] = None,
    suggest: Annotated[bool, typer.Option("--suggest", help="Only list tags by frequency with fixed features marked.")] = False,
    threshold: Annotated[Optional[float], typer.Option(help="Share of images a feature tag needs (default 0.35).")] = None,
    group: Annotated[Optional[List[str]], typer.Option("--group", help="Feature group to consider (repeat); default all.")] = None,
    top: Annotated[int, typer.Option(help="Rows shown by --suggest (0 = all).")] = 40,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Fold fixed features (hair/eye colour, species, markings, ...) into the trigger by removing their tags."""
    from lorakiln.captions.features import bundled_features
    from lorakiln.services import caption as svc

    c = _session(project, write=not (dry_run or suggest))
    sel = _sel(subset, ids)
    if suggest:
        rows = svc.core_suggestions(c, sel, threshold, group)
        _print_suggestions(rows, top, bundled_features().version)
        return
    _report(c, svc.prune_core(c, tags or (), sel, threshold, group, dry_run), dry_run)


def _print_suggestions(rows, top: int, version: int) -> None:
    t = Table(show_header=True, header_style="bold",
              title=f"tags by frequency (feature list v{version}); marked tags are pruned by `prune-core`")
    for col, just in (("", "left"), ("tag", "left"), ("images", "right"), ("share", "right"), ("reason", "left")):
        t.add_column(col, justify=just)
    for s in rows[: top or None]:
        t.add_row("[bold green]*[/]" if s.core else "", escape(s.tag), str(s.count), f"{s.share:.0%}", escape(s.reason))
    out.print(t)
    marked = [s.tag for s in rows if s.core]
    out.print(escape(f"{len(marked)} marked: {', '.join(marked) or '-'}"))


@caption_app.command()
def consolidate(
    tags: Annotated[List[str], typer.Argument(help="Descriptor tags to replace, e.g. red_shirt crop_top.")],
    into: Annotated[str, typer.Option("--into", help="The new tag, e.g. roxanneshirt.")],
    require_all: Annotated[bool, typer.Option("--all/--any", help="Images need all of the tags (--all) or any one (--any, default).")] = False,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Replace a set of tags by one new tag (an outfit trigger) on the images that have them."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    res = svc.consolidate(c, tags, into, "all" if require_all else "any", _sel(subset, ids), dry_run)
    _report(c, res, dry_run)


@caption_app.command()
def replace(
    old: Annotated[str, typer.Argument(help="Tag to replace.")],
    new: Annotated[str, typer.Argument(help="Tag written instead.")],
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Replace one whole tag by another, in place."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    _report(c, svc.replace(c, old, new, _sel(subset, ids), dry_run), dry_run)


@caption_app.command()
def overlap(
    keep: Annotated[Optional[List[str]], typer.Option("--keep", help="Tag never dropped (repeat).")] = None,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Drop tags a more specific tag covers (long_hair + very_long_hair -> very_long_hair), on whole words."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    _report(c, svc.overlap(c, keep or (), _sel(subset, ids), dry_run), dry_run)


@caption_app.command()
def order(
    style: Annotated[Optional[str], typer.Option(help="animagine, pony, confidence or e621 (default [caption].order).")] = None,
    quality: Annotated[Optional[bool], typer.Option("--quality/--no-quality", help="Animagine quality tag from the score percentile.")] = None,
    rating: Annotated[Optional[bool], typer.Option("--rating/--no-rating", help="Rating tags from the post rating.")] = None,
    year: Annotated[Optional[bool], typer.Option("--year/--no-year", help="Animagine year tag from the post date.")] = None,
    aesthetic: Annotated[Optional[bool], typer.Option("--aesthetic/--no-aesthetic", help="Animagine aesthetic tag (record.extra['aesthetic']).")] = None,
    score: Annotated[Optional[bool], typer.Option("--score/--no-score", help="Pony score_9, score_8_up, ... tags.")] = None,
    subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None,
) -> None:
    """Order tags for the base model and add its special tags; updates keep_tokens."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    res = svc.order(c, style, _sel(subset, ids), dry_run, quality_tags=quality, rating_tags=rating,
                    year_tags=year, aesthetic_tags=aesthetic, score_tags=score)
    _report(c, res, dry_run)


@caption_app.command()
def reset(subset: SubsetOpt = None, ids: IdOpt = None, dry_run: DryOpt = False, project: ProjectOpt = None) -> None:
    """Rebuild captions from the image tags as they are now (after a new `kiln tag`)."""
    from lorakiln.services import caption as svc

    c = _session(project, write=not dry_run)
    _report(c, svc.reset(c, _sel(subset, ids), dry_run), dry_run)


@caption_app.command()
def freq(
    subset: SubsetOpt = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the whole table as CSV to this file.")] = None,
    top: Annotated[int, typer.Option(help="Rows shown (0 = all).")] = 50,
    project: ProjectOpt = None,
) -> None:
    """The tag frequency table of the current captions."""
    from lorakiln.captions.freq import frequency_csv
    from lorakiln.captions.model import tag_key
    from lorakiln.core.atomic import write_text
    from lorakiln.services import caption as svc

    c = _session(project)
    rows = svc.frequency(c, _sel(subset, None))
    if csv is not None:
        write_text(csv, frequency_csv(rows, c.all_categories))
        out.print(f"wrote {len(rows)} tags to {csv}")
        return
    t = Table(show_header=True, header_style="bold", title=f"{len(rows)} tags")
    for col, just in (("tag", "left"), ("images", "right"), ("share", "right"), ("category", "left")):
        t.add_column(col, justify=just)
    for r in rows[: top or None]:
        t.add_row(escape(r.tag), str(r.count), f"{r.share:.0%}", c.all_categories.get(tag_key(r.tag), ""))
    out.print(t)


@caption_app.command()
def show(rid: Annotated[str, typer.Argument(metavar="ID", help="Image id.")], project: ProjectOpt = None) -> None:
    """An image's caption as it will be written, and where it comes from."""
    from lorakiln.services import caption as svc

    c = _session(project)
    r, tags, text = svc.show(c, rid)
    origin = "edited caption" if r.caption is not None else "from the image tags (not edited yet)"
    out.print(f"[bold]{r.id}[/]  subset {r.subset}  {r.status.value}  {r.file or ''}  [dim]{origin}[/]")
    out.print(text, markup=False, highlight=False)


@caption_app.command("set")
def set_(
    rid: Annotated[str, typer.Argument(metavar="ID", help="Image id.")],
    text: Annotated[str, typer.Argument(help="The whole caption, comma-separated.")],
    project: ProjectOpt = None,
) -> None:
    """Replace one image's caption by hand (recorded; undo works)."""
    from lorakiln.services import caption as svc

    c = _session(project, write=True)
    _report(c, svc.set_caption(c, rid, text))


@caption_app.command()
def history(
    all_: Annotated[bool, typer.Option("--all", help="Also list undone edits.")] = False, project: ProjectOpt = None,
) -> None:
    """The caption edits, newest last; undone ones are hidden unless --all."""
    c = _session(project)
    apps, undone = c.log()
    shown = [e for e in apps if all_ or e.seq not in undone]
    if not shown:
        out.print("no caption edits yet")
        return
    t = Table(show_header=True, header_style="bold")
    for col in ("#", "time", "op", "arguments", "images", "state"):
        t.add_column(col, overflow="fold" if col == "arguments" else "ellipsis")
    for e in shown:
        t.add_row(str(e.seq), e.time[:16].replace("T", " "), e.op, escape(_fmt_args(e.args)), str(len(e.changes)),
                  "undone" if e.seq in undone else "")
    out.print(t)


def _fmt_args(args: dict) -> str:
    def v(x) -> str:
        return ",".join(map(str, x)) if isinstance(x, list) else str(x)

    return "  ".join(f"{k}={v(x)}" for k, x in args.items() if x not in ([], None, ""))


@caption_app.command()
def undo(
    n: Annotated[int, typer.Argument(help="How many of the latest edits to undo.")] = 1, project: ProjectOpt = None,
) -> None:
    """Undo the N latest caption edits exactly."""
    c = _session(project, write=True)
    targets, restored, drifted = c.undo(n)
    out.print(f"undid {', '.join(f'#{e.seq} {e.op}' for e in targets)}: {restored} captions restored")
    if drifted:
        out.print(f"  [yellow]{drifted} of them had been changed outside the history; restored anyway[/]")


def export(
    force: Annotated[bool, typer.Option("--force", help="Rewrite every file, even unchanged ones.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write dataset/<repeats>_<subset>/ with each kept image and its caption (kohya layout)."""
    from lorakiln.services.export import export_dataset

    p = open_project(project, write=True)
    res = export_dataset(p, RichProgress(), force=force)
    for folder, n in sorted(res.folders.items()):
        out.print(f"  dataset/{folder}: {n} images")
    out.print(f"[bold]export[/]: {res.linked} linked, {res.copied} copied, {res.captions_written} captions written, "
              f"{res.unchanged} unchanged, {res.removed} stale files removed")
    for s in res.skipped:
        out.print(f"  [red]skipped[/] {escape(s)}")
    for n in res.notices():  # hand-edited captions replaced, files kiln did not write kept
        out.print(f"  [yellow]{escape(n)}[/]")
    if res.missing_trigger:
        out.print(f"  [yellow]{res.missing_trigger} captions lack the trigger word: run `kiln caption trigger`[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(caption_app, name="caption")
    app.command()(export)
