"""kiln merge / resize / extract / info / card: thin wiring to services.merge and services.card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from lorakiln.cli.common import ProjectOpt, RichProgress, console, out, project_path

Dynamic = Annotated[Optional[tuple[str, float]], typer.Option(
    "--dynamic", metavar="METHOD X",
    help="Rank per module by kohya's rules: sv_ratio X (keep S > S0/X), sv_fro X (Frobenius retention X), "
         "sv_cumulative X (share X of the sum of singular values); --rank caps it.")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="Output precision: fp16, bf16 or fp32 "
                                                 "(default: that of the (first) input).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo even if the output was made from the same inputs.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
MAX_RANK = 65536  # lorakiln.merge.combine.MAX_RANK, repeated so the CLI loads without torch
ClampOpt = Annotated[Optional[float], typer.Option(
    "--clamp-quantile", help="Clamp the factors to this quantile of their magnitudes (kohya uses 0.99); off by default.")]


def _policy(rank, conv_rank, dynamic, clamp):
    from lorakiln.merge.combine import RankPolicy

    method, param = dynamic if dynamic else (None, None)
    return RankPolicy(rank=rank, conv_rank=conv_rank, method=method, param=param, clamp=clamp)


def _show(report, as_json: bool) -> None:
    summary = report.summary()
    if as_json:
        summary["per_module"] = [m.__dict__ for m in report.modules]
        out.print_json(json.dumps(summary, default=str))
        return
    if report.skipped:
        out.print(f"{report.output}: up to date (same inputs and settings); --force to redo", soft_wrap=True)
        return
    facts = ([f"{summary['modules']} modules"] if report.modules else []) + ([summary["arch"]] if "arch" in summary else [])
    out.print(f"[bold]{report.operation}[/] -> {report.output}  ({', '.join(facts)})", soft_wrap=True)
    for key in ("error_overall", "error_mean", "error_max", "retained_mean", "retained_min", "rank_min", "rank_max",
                "weights_changed", "modules_applied", "modules_unmatched", "modules_rewritten", "modules_kept",
                "verified"):
        if key in summary:
            value = summary[key]
            out.print(f"  {key.replace('_', ' ')}: {value:.3g}" if isinstance(value, float) else f"  {key.replace('_', ' ')}: {value}")
    if summary.get("worst"):
        t = Table("worst modules", "rel. error", "rank", header_style="bold")
        for w in summary["worst"]:
            t.add_row(w["module"], f"{w['error']:.3g}", str(w["rank"]))
        out.print(t)
    for note in summary.get("notes", []):
        console.print(f"  [yellow]{note}[/]", soft_wrap=True)


def merge(
    inputs: Annotated[list[str], typer.Argument(help="LoRA files with weights: a.safetensors:0.6 b.safetensors:0.4 "
                                                "(weight 1 when omitted).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="Rank of the result (SVD); default keeps every direction "
                                                "(exact).")] = None,
    conv_rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="Rank for k×k conv modules (default: --rank).")] = None,
    dynamic: Dynamic = None,
    concat: Annotated[bool, typer.Option("--concat", help="Concatenate ranks exactly (plain LoRA/LoCon only) "
                                         "instead of SVD.")] = False,
    alpha: Annotated[Optional[float], typer.Option(help="Alpha of the result (default: alpha = rank).")] = None,
    base: Annotated[Optional[Path], typer.Option(help="Base checkpoint (.safetensors): needed for DoRA inputs.")] = None,
    into: Annotated[Optional[Path], typer.Option("--into", help="Bake the LoRAs into this single-file checkpoint "
                                                 "instead (SD1.5 / SDXL).")] = None,
    dtype: DtypeOpt = None,
    clamp_quantile: ClampOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Merge LoRAs exactly: the weighted sum of their deltas, by SVD to --rank or by --concat;
    or bake them into a checkpoint with --into. Per-module error is reported."""
    from lorakiln.merge.files import dtype_of, parse_weighted
    from lorakiln.services import merge as svc

    weighted = [parse_weighted(s) for s in inputs]
    progress = RichProgress(quiet=as_json)
    if into is not None:
        _refuse_unused("--into", rank=rank, conv_rank=conv_rank, dynamic=dynamic, concat=concat or None, alpha=alpha,
                       base=base, dtype=dtype, clamp_quantile=clamp_quantile)
        report = svc.bake(into, weighted, output, force=force, progress=progress)
    else:
        report = svc.merge(weighted, output, policy=_policy(rank, conv_rank, dynamic, clamp_quantile), concat=concat,
                           alpha=alpha, base=base, dtype=dtype_of(dtype), force=force, progress=progress)
    _show(report, as_json)


def _refuse_unused(mode: str, **given) -> None:
    """Options that `mode` would silently ignore are refused instead."""
    from lorakiln.core.errors import KilnError

    unused = [f"--{k.replace('_', '-')}" for k, v in given.items() if v is not None]
    if unused:
        verb, it = ("do", "them") if len(unused) > 1 else ("does", "it")
        raise KilnError(f"{', '.join(unused)} {verb} not apply with {mode}; leave {it} out")


def resize(
    lora: Annotated[Path, typer.Argument(help="The LoRA to resize.")],
    rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="New rank (with --dynamic: the cap).")] = None,
    conv_rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="New rank of k×k conv modules (default: --rank).")] = None,
    dynamic: Dynamic = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: NAME-rN.safetensors beside it.")] = None,
    base: Annotated[Optional[Path], typer.Option(help="Base checkpoint: needed for DoRA inputs.")] = None,
    dtype: DtypeOpt = None,
    clamp_quantile: ClampOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a LoRA's rank keeping its strength (alpha scaled as kohya does); reports the energy kept."""
    from lorakiln.core.errors import KilnError
    from lorakiln.merge.files import dtype_of
    from lorakiln.services import merge as svc

    if rank is None and dynamic is None:
        raise KilnError("resize needs --rank N or --dynamic METHOD X")
    suffix = f"-r{rank}" if dynamic is None else f"-{dynamic[0]}{dynamic[1]:g}"
    target = output or lora.with_name(f"{lora.stem}{suffix}.safetensors")
    report = svc.resize(lora, target, _policy(rank, conv_rank, dynamic, clamp_quantile), dtype=dtype_of(dtype),
                        base=base, force=force, progress=RichProgress(quiet=as_json))
    _show(report, as_json)


def extract(
    tuned: Annotated[Path, typer.Argument(help="The fine-tuned single-file checkpoint.")],
    base: Annotated[Path, typer.Argument(help="The checkpoint it was tuned from.")],
    rank: Annotated[int, typer.Option(min=1, max=MAX_RANK, help="Rank of linear / 1×1 modules.")] = 32,
    conv_rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="Also extract k×k convs (LoCon) at this rank.")] = None,
    min_diff: Annotated[float, typer.Option(help="Leave the text encoder out if no weight differs by more.")] = 0.01,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: TUNED-lora-rN.safetensors.")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="fp16, bf16 or fp32.")] = "fp16",
    clamp_quantile: ClampOpt = None,
    force: ForceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Extract a LoRA from the difference of two checkpoints (kohya module names)."""
    from lorakiln.merge.files import dtype_of
    from lorakiln.services import merge as svc

    target = output or tuned.with_name(f"{tuned.stem}-lora-r{rank}.safetensors")
    report = svc.extract(tuned, base, target, _policy(rank, conv_rank, None, clamp_quantile), min_diff=min_diff,
                         dtype=dtype_of(dtype), force=force, progress=RichProgress(quiet=as_json))
    _show(report, as_json)


def _parse_sets(sets: list[str], unsets: list[str]) -> dict[str, str | None]:
    from lorakiln.core.errors import KilnError

    updates: dict[str, str | None] = {}
    for s in sets:
        key, eq, value = s.partition("=")
        if not eq or not key.strip():
            raise KilnError(f"--set {s!r}: write KEY=VALUE")
        updates[key.strip()] = value
    updates.update({k: None for k in unsets})
    return updates


def info(
    file: Annotated[Path, typer.Argument(help="A LoRA .safetensors file.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE: edit metadata (tensors untouched).")] = None,
    unset: Annotated[Optional[list[str]], typer.Option("--unset", help="KEY: remove a metadata key.")] = None,
    top: Annotated[int, typer.Option(min=0, help="How many of the most frequent training tags to show.")] = 20,
    modules: Annotated[bool, typer.Option("--modules", help="List every module: algorithm, rank, alpha, shape "
                                          "(always in --json).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Architecture, algorithm, ranks/alphas, training settings, tags and hashes of a LoRA."""
    from lorakiln.services import merge as svc

    if set_ or unset:
        changed = svc.set_metadata(file, _parse_sets(set_ or [], unset or []))
        console.print(f"{file}: metadata updated ({len(changed)} keys); tensor hash unchanged")
    desc = svc.info(file, top)
    if as_json:
        out.print_json(json.dumps(desc, default=str))
        return
    _print_info(desc)
    if modules:
        t = Table("module", "algo", "rank", "alpha", "scale", "shape", header_style="bold")
        for m in desc["per_module"]:
            t.add_row(m["name"], m["algo"] + (" +DoRA" if m["dora"] else ""), str(m["rank"] or "full"),
                      "-" if m["alpha"] is None else f"{m['alpha']:g}", f"{m['scale']:.4g}",
                      "×".join(map(str, m["shape"])))
        out.print(t)


def _print_info(d: dict) -> None:
    h, m, a = d["hashes"], d["modules"], d["architecture"]
    out.print(f"[bold]{d['file']['name']}[/]  {d['file']['bytes']:,} bytes  architecture: [bold]{a['detected']}[/]")
    out.print(f"  AutoV3 (A1111 LoRA hash): {h['autov3']}   AutoV2: {h['autov2']}   sshs_model_hash: "
              f"{(h['sshs_model_hash'] or '-')[:12]}   legacy: {h['sshs_legacy_hash'] or '-'}")
    if h["sshs_matches_file"] is False:
        out.print("  [yellow]the stored sshs_model_hash does not match the tensors: the file was changed after "
                  "it was written; A1111 and Civitai lookups that trust the stored hash name the old model[/]")
    net = d["network"]
    out.print(f"  network: {net['module'] or '-'}  dim {net['dim'] or '-'}  alpha {net['alpha'] or '-'}  args {net['args'] or '-'}")
    out.print(f"  modules: {m['total']}  by part {m['by_part']}  by algorithm {m['by_algo']}  k×k convs {m['conv_kxk']}"
              f"  DoRA {m['dora']}")
    out.print(f"  ranks {m['ranks']}  alphas {m['alphas']}")
    for key, why in d["unreadable"].items():
        out.print(f"  [yellow]{key}: unreadable, {escape(why)}[/]", soft_wrap=True)
    if d["nonfinite"]["tensors"]:
        console.print(f"  [red]BROKEN: {d['nonfinite']['message']}[/]", soft_wrap=True)
    if not m["total"]:
        out.print("  [yellow]no LoRA modules: nothing to apply[/] (no kohya lora_unet_*/lora_te*_ keys lorakiln "
                  "or any loader reads)", soft_wrap=True)
    for r in d["loaders"].values():
        state = "[green]exact[/]" if r["exact"] else f"[yellow]not exact[/] ({_loader_why(r)})"
        out.print(f"  {r['label']}: {state}", soft_wrap=True)
    if m["ignored_count"]:
        out.print(f"  [yellow]{m['ignored_count']} keys of unsupported kinds, e.g. {m['ignored_examples'][:3]}[/]")
    for title, rows in (("training", d["training"]), ("metadata", d["metadata"])):
        if rows:
            t = Table(title=title, show_header=False)
            for k, v in rows.items():
                t.add_row(k, str(v))
            out.print(t)
    if d["dataset"]["dirs"]:
        out.print("  dataset: " + ", ".join(f"{k} ({v.get('img_count', '?')} images x {v.get('n_repeats', '?')})"
                                           for k, v in d["dataset"]["dirs"].items()))
    if d["dataset"]["tag_frequency_top"]:
        out.print("  top tags: " + ", ".join(f"{t} ({c})" for t, c in d["dataset"]["tag_frequency_top"]))
    if d["provenance"]:
        out.print(f"  provenance: {json.dumps(d['provenance'], ensure_ascii=False)}")


def _loader_why(r: dict) -> str:
    parts = [f"{n} of {r['modules']} modules: {reason}" for reason, n in r["reasons"].items()]
    if r["ignored_keys"]:
        parts.append(f"{r['ignored_keys']} keys of unsupported kinds not loaded")
    worst = f"; measured on a probe weight, up to {r['error_max']:.0%} off" if r["error_max"] else ""
    return "; ".join(parts) + worst


def card(
    run: Annotated[Optional[str], typer.Argument(help="Run id or folder (default: the newest run).")] = None,
    lora: Annotated[Optional[Path], typer.Option("--lora", help="Make the card for this LoRA file instead of a run.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for card.md and info.txt "
                                                   "(default: the run folder, or beside --lora).")] = None,
    top: Annotated[int, typer.Option(min=0, help="Tags listed in the tag-frequency section.")] = 30,
    project: ProjectOpt = None,
) -> None:
    """Write card.md and info.txt for publishing: triggers, tags, weight, settings, dataset."""
    from lorakiln.services import card as svc

    written = svc.make_card(project_path(project), run=run, lora=lora, out_dir=output, top=top)
    for p in written:
        out.print(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command()(merge)
    app.command()(resize)
    app.command()(extract)
    app.command()(info)
    app.command()(card)
