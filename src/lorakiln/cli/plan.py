"""kiln plan / kiln doctor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, open_project, out
from lorakiln.core.errors import KilnError, ProjectNotFound


def _weights(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out_: dict[str, float] = {}
    for it in items:
        name, sep, w = it.partition("=")
        try:
            out_[name.strip()] = float(w)
        except ValueError:
            raise KilnError(f"--weight {it!r}: use SUBSET=NUMBER, e.g. --weight back=0.3") from None
        if not sep or not name.strip():
            raise KilnError(f"--weight {it!r}: use SUBSET=NUMBER, e.g. --weight back=0.3")
    return out_


def plan(
    folder: Annotated[Optional[Path], typer.Argument(help="Plan for a kohya folder (N_name subfolders) instead of the project; prints only.")] = None,
    family: Annotated[Optional[str], typer.Option(help="sd15 or sdxl (default: from the base model's preset).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Batch size (default: train.train_batch_size in project.toml); written there too.")] = None,
    strength: Annotated[Optional[float], typer.Option("--strength", "-s", help="Training strength S: LR = S / (repeats x epochs x images) (seed 003).")] = None,
    te_ratio: Annotated[Optional[float], typer.Option(help="Text-encoder LR as a ratio of the U-Net LR.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="Repeats/epochs rule (see --list-schedules).")] = None,
    weight: Annotated[Optional[list[str]], typer.Option("--weight", "-w", help="SUBSET=W: relative weight when balancing (repeatable).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Fix the number of epochs.")] = None,
    images_per_epoch: Annotated[Optional[int], typer.Option(help="Fix the target images x repeats per epoch.")] = None,
    nearest: Annotated[bool, typer.Option("--nearest", help="Take the nearest table row instead of interpolating.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Print the plan; write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also replace values you edited by hand since the last plan.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    list_schedules: Annotated[bool, typer.Option("--list-schedules", help="List the schedules and exit.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Repeats per subset, epochs, steps and learning rate, each number explained; written into project.toml."""
    from lorakiln.services import plan as svc

    if list_schedules:
        return _print_schedules()
    cli = {"family": family, "schedule": schedule, "strength": strength, "te_ratio": te_ratio,
           "epochs": epochs, "images_per_epoch": images_per_epoch,
           "lookup": "nearest" if nearest else None, "weights": _weights(weight)}
    if folder is not None:
        outcome = _plan_folder(folder, cli, batch_size, project)
    else:
        outcome = svc.plan_project(open_project(project, write=not dry_run), cli, batch_size=batch_size, dry_run=dry_run, force=force)
    if as_json:
        typer.echo(json.dumps({**outcome.plan.summary(), "explanation": [vars(s) for s in outcome.plan.lines],
                                   "notes": outcome.plan.notes, "written": outcome.written,
                                   "changes": [{"key": c.key, "old": c.old, "new": c.new, "status": c.status}
                                               for c in outcome.changes]}, default=str, indent=2))
        return
    _print_plan(outcome)


def _plan_folder(folder: Path, cli: dict, batch_size: int | None, project_opt):
    from lorakiln.services import plan as svc

    try:
        proj = open_project(project_opt)
    except ProjectNotFound:
        proj = None
    if proj is not None:
        cfg, train = proj.resolve("plan", cli), proj.resolve("train")
        base = train.base or proj.info.base
        return svc.plan_folder(folder, cfg, arch=svc.base_arch(base, cfg.family), base=base,
                               batch_size=batch_size or train.train_batch_size, optimizer=train.optimizer.optimizer,
                               back_limit=proj.resolve("doctor").max_back_share, sources=svc.plan_sources(proj, cli))
    from lorakiln.config.plan import PlanConfig
    from lorakiln.config.resolve import resolve_section

    cfg = resolve_section(PlanConfig, name="plan", cli=cli, source="command line")
    return svc.plan_folder(folder, cfg, arch=cfg.family, batch_size=batch_size or svc.default_batch_size(),
                           sources=svc.plan_sources(None, cli))


def _print_plan(outcome) -> None:
    from lorakiln.planning.explain import fmt

    p = outcome.plan
    for s in p.lines:
        out.print(f"[bold]{escape(s.what)}[/] = [green]{escape(fmt(s.value))}[/]  [dim]({escape(s.rule)})[/]")
        out.print(f"    {escape(s.arithmetic)}")
    out.print(f"[bold]{p.images_per_epoch}[/] images per epoch x [bold]{p.epochs}[/] epochs / batch {p.batch_size} "
              f"= [bold]{p.steps}[/] steps")
    for note in p.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    for old, new in outcome.renames:
        out.print(f"rename folder {escape(old)} -> {escape(new)}")
    for c in outcome.changes:
        what = {"set": "[green]set[/]" if outcome.written else "would set", "unchanged": "unchanged",
                "kept": "[yellow]kept[/] (edited by hand since the last plan; --force replaces it)"}[c.status]
        out.print(f"{escape(c.key)}: {escape(fmt(c.old)) if c.old is not None else '-'} -> {escape(fmt(c.new))}  {what}")
    if outcome.changes and not outcome.written:
        out.print("dry run: project.toml not changed")


def _print_schedules() -> None:
    from lorakiln.planning.schedules import SCHEDULES

    t = Table(show_header=True, header_style="bold")
    for col in ("schedule", "family", "source", "what it does"):
        t.add_column(col, overflow="fold")
    for name, s in SCHEDULES.items():
        t.add_row(name, s.arch or "any", s.source, s.description)
    out.print(t)
    out.print("auto: SD1.5 -> sd15-images (one subset) or sd15-concepts (several); SDXL -> xl-100")


def doctor(
    folder: Annotated[Optional[Path], typer.Argument(help="Check a folder of image + .txt pairs (or N_name subfolders) instead of the project.")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every image concerned, not just the first few.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with code 1 when any warning is found.")] = False,
    rule: Annotated[Optional[list[str]], typer.Option("--rule", "-r", help="Run only this rule (repeatable).")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Training resolution (default: train.buckets.resolution, else the base model's).")] = None,
    trigger: Annotated[Optional[list[str]], typer.Option("--trigger", "-t", help="Trigger word(s) for a folder outside a project.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="List the rules and exit.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Check the dataset against the seeds' rules of thumb; each finding names the images and a fix."""
    from lorakiln.services import doctor as svc

    if list_rules:
        from lorakiln.planning.doctor import RULES, rule_doc

        for name in RULES.names():
            out.print(f"[bold]{name}[/]: {escape(rule_doc(name))}")
        return
    cli = {"rules": rule or None}
    if folder is not None:
        from lorakiln.config.doctor import DoctorConfig

        report = svc.run_doctor_folder(folder, DoctorConfig(**{k: v for k, v in cli.items() if v}), trigger or [], resolution)
    else:
        report = svc.run_doctor(open_project(project), cli, resolution)
    if as_json:
        typer.echo(json.dumps({"images": report.images, "warnings": report.warnings, "notes": report.notes,
                                   "findings": [f.as_dict() for f in report.findings]}, indent=2))
    else:
        _print_findings(report, show_all)
    if strict and report.warnings:
        raise typer.Exit(1)


def _print_findings(report, show_all: bool) -> None:
    for f in report.findings:
        style = "yellow" if f.severity == "warning" else "cyan"
        out.print(f"[{style}]{f.severity}[/] [bold]{f.rule}[/]: {escape(f.message)}")
        if f.items:
            n = len(f.items) if show_all else report.max_items
            shown = ", ".join(f.items[:n])
            more = f" ... and {len(f.items) - n} more (--all)" if len(f.items) > n else ""
            out.print(f"    images: {escape(shown)}{more}", soft_wrap=True)
        if f.fix:
            out.print(f"    fix: {escape(f.fix)}")
    for note in report.notes:
        out.print(f"[dim]note: {escape(note)}[/]")
    w = report.warnings
    out.print(f"{report.images} images checked: {w} warning{'s' if w != 1 else ''}, "
              f"{len(report.findings) - w} info")


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(doctor)
