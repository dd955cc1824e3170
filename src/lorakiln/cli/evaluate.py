"""kiln sample / kiln grid / kiln eval / kiln runs {list,compare}: thin wiring over services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, RichProgress, console, out, project_path

Loras = Annotated[Optional[list[str]], typer.Option(
    "--lora", "-l", help="LoRA file, optionally with a weight: FILE or FILE:0.8 (repeat to stack).")]
LoraDirs = Annotated[Optional[list[Path]], typer.Option(
    "--lora-dir", help="Folder searched for <lora:NAME:w> names in prompts (repeatable).")]
Base = Annotated[Optional[str], typer.Option(
    "--base", help="Base model: .safetensors file, diffusers folder, hub id or family (tiny-sd15).")]
Sampler = Annotated[Optional[str], typer.Option(
    help="Sampler: euler_a, dpmpp_2m_karras, ddim, ... or \"DPM++ 2M Karras\".")]
Steps = Annotated[Optional[int], typer.Option(help="Sampling steps.")]
Cfg = Annotated[Optional[float], typer.Option("--cfg", help="CFG scale.")]
Width = Annotated[Optional[int], typer.Option(help="Width in pixels (default: the base model's resolution).")]
Height = Annotated[Optional[int], typer.Option(help="Height in pixels.")]
ClipSkip = Annotated[Optional[int], typer.Option("--clip-skip", help="Clip skip (default: the LoRA's, else 1).")]
Force = Annotated[bool, typer.Option("--force", help="Generate again even if the pictures exist.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _cli(**values: Any) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _loras(specs: Optional[list[str]]) -> list[tuple[Path, float]]:
    from lorakiln.merge.files import parse_weighted

    out_ = []
    for s in specs or []:
        path, w = parse_weighted(s)
        if not path.expanduser().is_file():
            raise typer.BadParameter(f"{path}: no such LoRA file", param_hint="--lora")
        out_.append((path.expanduser().resolve(), w))
    return out_


def _session(project, cfg, loras, lora_dirs, extra_dirs=()):
    from lorakiln.evaluate.library import LoraLibrary
    from lorakiln.services.sample import Session, default_base

    dirs = [*(lora_dirs or []), *extra_dirs]
    if project is not None:
        dirs.append(project.runs_dir)
    library = LoraLibrary([p for p, _ in loras], dirs, project.cache_dir if project is not None else None)
    return Session(cfg, default_base(cfg, project), library, project.cache_dir if project else None)


def _report_render(rep) -> None:
    if rep.reused:
        out.print(f"reused {rep.reused} existing picture(s)")
    for alias, names in rep.unmatched.items():
        console.print(f"[yellow]warning:[/] {escape(alias)}: {len(names)} module(s) not in this model "
                      f"(e.g. {names[0]})")
    for name, reason in rep.failed:
        console.print(f"[red]failed:[/] {escape(name)}: {escape(reason)}")


def _option(name: str, text: str, parse):
    """`parse(text)`, or an error naming the option and its value."""
    from lorakiln.core.errors import KilnError

    try:
        return parse(text)
    except KilnError as e:
        raise KilnError(f"bad {name} {text!r}: {str(e).removeprefix(repr(text) + ': ')}") from None


def _seeds(text: str) -> list[int]:
    from lorakiln.evaluate.prompts import in_range, int_values

    return in_range(int_values(text), 0, 2**64 - 1, "seed")


def sample(
    prompt: Annotated[Optional[list[str]], typer.Argument(
        help="Prompt(s); A1111 <lora:NAME:w> and (emphasis:1.2) work.")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option(
        "--prompt-file", help="kohya-style prompt file (--n --w --h --d --s --l --ss).")] = None,
    negative: Annotated[Optional[str], typer.Option(
        "--negative", "-n", help="Negative prompt (default: the negative of the eval settings).")] = None,
    seed: Annotated[Optional[str], typer.Option(
        "--seed", "-s", help="Seed(s): 1 or 1,2,3 or 1-4 (default: random).")] = None,
    lora: Loras = None, lora_dir: LoraDirs = None, base: Base = None, sampler: Sampler = None, steps: Steps = None,
    cfg: Cfg = None, width: Width = None, height: Height = None, clip_skip: ClipSkip = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for the pictures (default: samples/).")] = None,
    force: Force = False, project: ProjectOpt = None,
) -> None:
    """Generate pictures from a base model plus LoRA(s), saved with A1111 `parameters` metadata."""
    from lorakiln.services.sample import PromptItem, find_project, resolve_config, run_sample

    seeds = _option("--seed", seed, _seeds) if seed is not None else None
    proj = find_project(project_path(project))
    conf = resolve_config(proj, _cli(base=base, sampler=sampler, steps=steps, cfg=cfg, width=width, height=height,
                                     clip_skip=clip_skip))
    items = [PromptItem(p) for p in prompt or []]
    if prompt_file:
        from lorakiln.train.sample_prompts import load_prompts

        parsed, notes = load_prompts(prompt_file)
        for n in notes:
            console.print(f"[yellow]note:[/] {escape(n)}")
        items += [PromptItem(p.prompt, p.negative or None, p.width, p.height, p.seed, p.steps, p.scale, p.sampler)
                  for p in parsed]
    loras = _loras(lora)
    session = _session(proj, conf, loras, lora_dir)
    where = out_dir or ((proj.root if proj else Path.cwd()) / "samples")
    res = run_sample(session, items, seeds=seeds, negative=negative, loras=loras,
                     out_dir=where, progress=RichProgress(), force=force)
    _report_render(res.report)
    for f in res.files:
        out.print(str(f))
    if not seed:
        out.print(f"seed: {', '.join(map(str, res.seeds))}")


def grid(
    run: Annotated[Optional[str], typer.Argument(
        help="Run id or folder whose checkpoints the checkpoint axis uses.")] = None,
    prompt: Annotated[str, typer.Option("--prompt", "-P", help="Prompt of every cell (A1111 syntax).")] = "",
    x: Annotated[Optional[str], typer.Option("--x", "-x", help="X axis KIND=VALUES: checkpoint=all, weight=0.6,0.8,1, "
                                             "prompt=SEARCH,REPL..., seed=1-4, cfg=5,7, steps=, sampler=.")] = None,
    y: Annotated[Optional[str], typer.Option("--y", "-y", help="Y axis KIND=VALUES.")] = None,
    z: Annotated[Optional[str], typer.Option("--z", "-z", help="Z axis KIND=VALUES: one picture per value.")] = None,
    negative: Annotated[Optional[str], typer.Option("--negative", "-n", help="Negative prompt.")] = None,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Seed of every cell (unless seed is an axis).")] = 1,
    lora: Loras = None, lora_dir: LoraDirs = None, base: Base = None, sampler: Sampler = None, steps: Steps = None,
    cfg: Cfg = None, width: Width = None, height: Height = None, clip_skip: ClipSkip = None,
    out_dir: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Folder for the grids (default: the run's grids/).")] = None,
    force: Force = False, project: ProjectOpt = None,
) -> None:
    """X/Y/Z plot: labelled grids over checkpoints, weights, prompts (S/R), seeds, CFG, steps, samplers."""
    from lorakiln.services.sample import (checkpoint_choices, default_base, find_project, grid_run, resolve_config,
                                          run_grid)

    if not prompt:
        raise typer.BadParameter("give the prompt of the cells with --prompt", param_hint="--prompt")
    proj = find_project(project_path(project))
    loras = _loras(lora)
    run_dir, run_cfg = grid_run(proj, run, [x, y, z], bool(loras))
    conf = resolve_config(proj, _cli(base=base, sampler=sampler, steps=steps, cfg=cfg, width=width, height=height,
                                     clip_skip=clip_skip))
    if conf.base is None and run_cfg:
        conf = conf.model_copy(update={"base": default_base(conf, proj, run_cfg)})
    session = _session(proj, conf, loras, lora_dir, [run_dir] if run_dir else [])
    where = out_dir or (run_dir / "grids" if run_dir else (proj.root if proj else Path.cwd()) / "grids")
    res = run_grid(session, prompt=prompt, negative=negative, seed=seed, axes=[x, y, z],
                   checkpoints=checkpoint_choices(run_dir, loras), loras=loras, out_dir=where,
                   progress=RichProgress(), force=force)
    _report_render(res.report)
    for f in res.files:
        out.print(str(f))


def evaluate(
    run: Annotated[Optional[str], typer.Argument(help="Run id or folder (default: the newest run).")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="LoRA weights, e.g. 0.6,0.8,1.0.")] = None,
    checkpoints: Annotated[Optional[str], typer.Option(help="all, last, last:N or epochs 2,4,6.")] = None,
    probes: Annotated[Optional[str], typer.Option("--probes", help="Probe set: quick, standard, full.")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Seeds for every probe, e.g. 1001,2002.")] = None,
    embedder: Annotated[Optional[str], typer.Option(
        help="Character similarity: auto, ccip, tagger, descriptor.")] = None,
    ccip: Annotated[Optional[Path], typer.Option("--ccip", help="Folder with the CCIP ONNX files.")] = None,
    tagger: Annotated[Optional[str], typer.Option(
        help="Tagger name or folder (default: the project's tagger).")] = None,
    base: Base = None, sampler: Sampler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, force: Force = False, as_json: Json = False, project: ProjectOpt = None,
) -> None:
    """Measure every checkpoint x weight against the base model (fidelity, flexibility, leakage, bleed); pick one."""
    from lorakiln.cli.common import open_project
    from lorakiln.evaluate.prompts import float_values, int_values
    from lorakiln.services.evaluate import checkpoint_choice, run_eval
    from lorakiln.services.sample import resolve_config

    proj = open_project(project)
    if checkpoints is not None:
        _option("--checkpoints", checkpoints, checkpoint_choice)
    flags = _cli(base=base, sampler=sampler, steps=steps, cfg=cfg, width=width, height=height, checkpoints=checkpoints,
                 weights=_option("--weights", weights, float_values) if weights is not None else None)
    flags["probes"] = _cli(probe_set=probes, seeds=_option("--seeds", seeds, int_values) if seeds is not None else None)
    flags["models"] = _cli(embedder=embedder, ccip_local=str(ccip.resolve()) if ccip else None, tagger=tagger)
    res = run_eval(proj, run, resolve_config(proj, flags), RichProgress(), force=force)
    if as_json:
        out.print_json(json.dumps(res.doc))
        return
    _report_render(res.render)
    rec = res.doc["recommended"]
    for n in res.notes:
        console.print(f"[yellow]note:[/] {escape(n)}")
    if rec.get("checkpoint"):
        out.print(f"[bold green]recommended:[/] {rec['checkpoint']} at weight {rec['weight']:g}")
    elif rec.get("status") == "cannot_judge":
        out.print("[bold]no recommendation: the pick cannot be judged[/] (no metric here can see the character)")
    else:
        out.print("[bold]no recommendation[/]")
    out.print(escape(rec.get("reason", "")))
    for f in res.doc.get("findings", []):
        out.print(f"[yellow]- {escape(f['message'])}[/]")
    out.print(f"report: {res.out_dir / 'report.html'}  ({res.images} pictures, {res.seconds:.1f}s)")


runs_app = typer.Typer(help="Training runs of the project: list them, compare them side by side.",
                       no_args_is_help=True)


@runs_app.command("list")
def runs_list(as_json: Json = False, project: ProjectOpt = None) -> None:
    """Every run: status, checkpoints, and the eval pick if evaluated."""
    from lorakiln.cli.common import open_project
    from lorakiln.services.runs import list_runs

    rows = list_runs(open_project(project))
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table("run", "status", "output", "checkpoints", "recommended", header_style="bold")
    for r in rows:
        rec = r["recommended"] or {}
        pick = f"{rec.get('checkpoint')} @ {rec.get('weight')}" if rec.get("checkpoint") else "-"
        t.add_row(r["id"], r["status"], r["output_name"] or "-", str(r["checkpoints"]), pick)
    out.print(t)


@runs_app.command("compare")
def runs_compare(runs: Annotated[Optional[list[str]], typer.Argument(help="Run ids (default: all runs).")] = None,
                 as_json: Json = False, project: ProjectOpt = None) -> None:
    """Runs side by side: settings that differ, dataset changes, eval metrics."""
    from lorakiln.cli.common import open_project
    from lorakiln.services.runs import compare_runs

    doc = compare_runs(open_project(project), runs)
    if as_json:
        out.print_json(json.dumps(doc, default=str))
        return
    ids = [r["id"] for r in doc["runs"]]
    _table("settings that differ", ids, [(k, v) for k, v in doc["settings"].items()])
    _table("dataset", ids, [("images", [d["images"] for d in doc["dataset"]]),
                            ("dataset hash", [d["hash"] for d in doc["dataset"]])])
    for d in doc["dataset"][1:]:
        ch = d.get("tags_vs_previous") or {}
        parts = [f"+{t}" for t, _ in ch.get("added", [])] + [f"-{t}" for t, _ in ch.get("removed", [])]
        parts += [f"{t} {a:.0%}->{b:.0%}" for t, a, b in ch.get("changed", [])]
        if parts:
            out.print(escape(f"tags in {d['run']} vs previous: {', '.join(parts)}"))
    names = sorted({m for e in doc["eval"] for m in e["metrics"]})
    rows = [("recommended", [f"{(e['recommended'] or {}).get('checkpoint', '-')} @ "
                             f"{(e['recommended'] or {}).get('weight', '-')}" if e["recommended"] else "-"
                             for e in doc["eval"]])]
    rows += [(m, [e["metrics"].get(m) for e in doc["eval"]]) for m in names]
    _table("eval (recommended pick)", ids, rows)


def _table(title: str, ids: list[str], rows: list[tuple[str, list]]) -> None:
    t = Table("", *ids, title=title, header_style="bold")
    for name, vals in rows:
        t.add_row(name, *("-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in vals))
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command()(sample)
    app.command()(grid)
    app.command("eval")(evaluate)
    app.add_typer(runs_app, name="runs")
