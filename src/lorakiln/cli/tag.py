"""kiln tag: WD / e621 taggers over the kept images; thresholds re-derive from stored scores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, RichProgress, open_project, out

# settings that decide which tags an image gets: saved to [tag] when given on the command line
SAVED = ("model", "threshold", "character_threshold", "mcut", "character_mcut", "merge", "also")


def tag(
    model: Annotated[Optional[str], typer.Option(
        help="Tagger name (--list-models), hub repo id, or folder with model.onnx + selected_tags.csv.")] = None,
    threshold: Annotated[Optional[str], typer.Option(
        help="General threshold 0-1, or 'balanced' (the model's P=R value).")] = None,
    character_threshold: Annotated[Optional[float], typer.Option(help="Character threshold 0-1.")] = None,
    mcut: Annotated[Optional[bool], typer.Option("--mcut/--no-mcut", help="MCut general threshold per image.")] = None,
    character_mcut: Annotated[Optional[bool], typer.Option(
        "--character-mcut/--no-character-mcut", help="MCut character threshold (floor 0.15).")] = None,
    merge: Annotated[Optional[str], typer.Option(help="Booru + tagger tags: union, booru or tagger.")] = None,
    also: Annotated[Optional[list[str]], typer.Option(
        "--also", metavar="MODEL[:THRESHOLD]",
        help="Extra tagger run after --model, with its own general threshold (repeatable; "
        "replaces [tag] also).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per model call.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Image-decoding threads.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Run the model again on images already tagged by it.")] = False,
    list_models: Annotated[bool, typer.Option("--list-models", help="List the registered taggers and exit.")] = False,
    top: Annotated[int, typer.Option(help="How many of the most frequent tags to show.")] = 20,
    project: ProjectOpt = None,
) -> None:
    """Tag the kept images; scores are stored, so changing a threshold needs no model run."""
    if list_models:
        _print_models()
        return
    from lorakiln.services.tag import run_tag

    p = open_project(project, write=True)
    if model and Path(model).expanduser().exists():  # a folder given on the command line: from here
        model = str(Path(model).expanduser().resolve())
    also_given = [_parse_also(a) for a in also] if also else None
    given = dict(model=model, also=also_given, threshold=threshold, character_threshold=character_threshold, mcut=mcut,
                 character_mcut=character_mcut, merge=merge, batch_size=batch_size, workers=workers, device=device)
    cfg = p.resolve("tag", given)
    report = run_tag(p, cfg, RichProgress(), force=force)
    saved = {k: getattr(cfg, k) for k in SAVED if given[k] is not None}
    if "also" in saved:
        saved["also"] = _toml_also(cfg.also)
    if saved:
        p.set_section("tag", saved)
    _print_report(report, top)
    if saved:
        out.print(escape("saved to project.toml [tag]: " + ", ".join(f"{k}={v}" for k, v in saved.items())))


def _parse_also(text: str) -> dict:
    """`MODEL[:THRESHOLD]` -> an [tag] also entry; a folder given here is made absolute."""
    model, threshold = text, None
    head, sep, tail = text.rpartition(":")
    if sep and head and (tail.strip().lower() == "balanced" or _is_number(tail)):
        model, threshold = head, tail.strip()
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return {"model": model} if threshold is None else {"model": model, "threshold": threshold}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _toml_also(entries) -> list:
    """[tag] also as one TOML array of inline tables, unset thresholds left out."""
    import tomlkit

    arr = tomlkit.array()
    for e in entries:
        t = tomlkit.inline_table()
        t.update(e.model_dump(exclude_none=True))
        arr.append(t)
    return arr


def _print_models() -> None:
    from lorakiln.tagging.models import TAGGERS

    for name, s in TAGGERS.items():  # one line each: names stay whole on narrow terminals
        balanced = f"balanced={s.balanced:g}" if s.balanced else "no balanced threshold"
        out.print(f"[bold]{name}[/]  {s.repo_id}  ({s.labels_file}, {balanced})  {s.notes}", soft_wrap=True)


def _print_model_run(head: str, r) -> None:
    """One model's part of the report: runs, reuse, speed, fallback and failures."""
    out.print(f"{head}model ran on {r.ran}, stored scores reused for {r.reused}")
    if r.ran:
        out.print(f"  {r.origin}  {', '.join(r.providers)}  {r.images_per_second:.2f} images/s")
    if r.fallback:
        out.print(f"  [yellow]one image at a time: {r.fallback}[/]")
    for rid, why in r.failed:
        out.print(f"  [red]failed[/] {escape(rid)}: {escape(why)}")


def _print_report(r, top: int) -> None:
    _print_model_run(f"[bold]{r.model}[/]: {r.images} kept images, ", r)
    for a in r.also:
        _print_model_run(f"also [bold]{escape(a.model)}[/]: ", a)
    out.print(f"  {r.tags_per_image:.1f} tags per image")
    if r.tag_counts:
        t = Table(show_header=True, header_style="bold", title="most frequent tags")
        t.add_column("tag")
        t.add_column("images", justify="right")
        for name, n in r.tag_counts.most_common(top):
            t.add_row(escape(name), str(n))
        out.print(t)
    if r.edited_captions:
        out.print(f"  [yellow]{r.edited_captions} images already have edited captions, which these tags do not "
                  "change: `kiln caption reset` rebuilds them from the tags (undoable)[/]")


def register(app: typer.Typer) -> None:
    app.command()(tag)
