"""kiln train: train a LoRA from the project's dataset/ (or --data / --dataset-config)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

from lorakiln.cli.common import ProjectOpt, RichProgress, console, open_project, out, project_path
from lorakiln.core.errors import KilnError, ProjectNotFound

LATEST = "latest"


class _TrainCommand(TyperCommand):
    """Lets `--resume` be given without a value (= the newest run with a saved state)."""

    def parse_args(self, ctx, args):
        args = list(args)
        for i, a in enumerate(args):
            if a == "--resume" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, LATEST)
        return super().parse_args(ctx, args)


def _value(text: str) -> Any:
    """A --set value as TOML (numbers, booleans, lists, quoted strings), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _put(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        tree = tree.setdefault(k, {})
    tree[keys[-1]] = value


def _abs(p: Optional[Path]) -> str | None:
    return str(p.expanduser().resolve()) if p is not None else None


def overrides(flags: dict[str, Any], sets: list[str]) -> dict:
    """Nested [train] overrides from the flags that were given (None = not given)."""
    tree: dict = {}
    for dotted, value in flags.items():
        if value is not None:
            _put(tree, dotted, value)
    for s in sets:
        key, sep, val = s.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set {s!r}: use KEY=VALUE, e.g. network.network_dim=8", param_hint="--set")
        _put(tree, key.strip().removeprefix("train."), _value(val.strip()))
    return tree


def _is_main_process() -> bool:
    """True except in the non-main processes of a multi-process (accelerate launch) training.

    Asked after training, when the trainer's Accelerator has set up accelerate's shared state;
    a single process is always the main one."""
    from accelerate import PartialState

    return PartialState().is_main_process


def _list_optimizers() -> None:
    from lorakiln.train.optim import OPTIMIZERS

    t = Table("optimizer", "default args", "needs", "notes", header_style="bold")
    for name, spec in OPTIMIZERS.items():
        args = " ".join(f"{k}={v}" for k, v in spec.defaults.items())
        t.add_row(name, args, "CUDA" if spec.needs_cuda else "", spec.notes)
    out.print(t)
    out.print("Any other optimizer class by dotted path, e.g. --optimizer pytorch_optimizer.AdEMAMix")


def _list_schedulers() -> None:
    from lorakiln.train.schedulers import SCHEDULERS

    t = Table("lr_scheduler", "notes", header_style="bold")
    for name, spec in SCHEDULERS.items():
        t.add_row(name, spec.notes)
    out.print(t)


def train(
    project: ProjectOpt = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Folder of kohya-style N_name subfolders (or one image folder).")] = None,
    dataset_config: Annotated[Optional[Path], typer.Option("--dataset-config", help="kohya dataset TOML.")] = None,
    reg_data: Annotated[Optional[Path], typer.Option("--reg-data", help="Folder of N_name regularisation subfolders.")] = None,
    base: Annotated[Optional[str], typer.Option(help="Base model: file, diffusers folder, hub id or family (tiny-sd15).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="max_train_epochs.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="max_train_steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="train_batch_size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="learning_rate.")] = None,
    unet_lr: Annotated[Optional[float], typer.Option("--unet-lr", help="unet_lr.")] = None,
    te_lr: Annotated[Optional[float], typer.Option("--te-lr", help="text_encoder_lr (0 = U-Net only).")] = None,
    dim: Annotated[Optional[int], typer.Option(help="network_dim.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="network_alpha.")] = None,
    algo: Annotated[Optional[str], typer.Option(help="lora, locon, loha or lokr.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="Optimizer (see --list-optimizers).")] = None,
    optimizer_args: Annotated[Optional[str], typer.Option("--optimizer-args", help="kohya style: \"weight_decay=0.1 betas=0.9,0.99\".")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="lr_scheduler (see --list-schedulers).")] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Training resolution.")] = None,
    output_name: Annotated[Optional[str], typer.Option("--output-name", help="LoRA file name stem.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed.")] = None,
    sample_prompts: Annotated[Optional[Path], typer.Option("--sample-prompts", help="kohya prompt file for samples.")] = None,
    save_state: Annotated[Optional[bool], typer.Option("--save-state/--no-save-state", help="Save resumable states.")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Accept a pickled .ckpt base (read weights-only).")] = False,
    set_: Annotated[list[str], typer.Option("--set", help="Any train setting by its dotted name: --set network.conv_dim=8 (repeatable).")] = [],  # noqa: B006
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config, steps and memory; train nothing.")] = False,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Skip the memory estimate in --dry-run.")] = False,
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="[RUN]", help="Continue a run from its saved state (default: the newest run; one without a state is an error, never an older run).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Train again even if the same run is already done.")] = False,
    list_optimizers: Annotated[bool, typer.Option("--list-optimizers", help="List optimizers and exit.")] = False,
    list_schedulers: Annotated[bool, typer.Option("--list-schedulers", help="List LR schedulers and exit.")] = False,
) -> None:
    """Train a LoRA: resumable, with checkpoints, states, samples and events in runs/<run-id>/."""
    if list_optimizers or list_schedulers:
        _list_optimizers() if list_optimizers else _list_schedulers()
        return
    from lorakiln.services import train as svc
    from lorakiln.services import train_resume as resuming

    flags = {
        "data.train_data_dir": _abs(data), "data.dataset_config": _abs(dataset_config), "data.reg_data_dir": _abs(reg_data),
        "base": _abs(Path(base)) if base and Path(base).expanduser().exists() else base,
        "max_train_epochs": epochs, "max_train_steps": max_steps, "train_batch_size": batch_size,
        "optimizer.learning_rate": lr, "optimizer.unet_lr": unet_lr, "optimizer.text_encoder_lr": te_lr,
        "network.network_dim": dim, "network.network_alpha": alpha, "network.algo": algo,
        "optimizer.optimizer": optimizer, "optimizer.optimizer_args": optimizer_args,
        "optimizer.lr_scheduler": scheduler, "buckets.resolution": resolution, "output_name": output_name,
        "seed": seed, "sample.sample_prompts": _abs(sample_prompts), "save.save_state": save_state,
        "allow_pickle": True if allow_pickle else None,
    }
    cli = overrides(flags, set_)
    try:
        proj = open_project(project)
    except ProjectNotFound as e:
        if project_path(project) is not None or resume is not None:
            raise  # outside a project, rerunning the same command continues an unfinished run
        if not (data or dataset_config):
            raise KilnError(f"{e}; or train on a kohya folder: --data DIR --base MODEL") from None
        proj = None
    run = None
    if resume is not None:
        req, run = resuming.resume_request(proj, None if resume == LATEST else resume, cli)
        if not dry_run:
            console.print(resuming.resume_point(run))
    elif proj is None:
        req = svc.request_from_folder(cli, Path.cwd())
    else:
        req = svc.request_from_project(proj, cli)
    plan = svc.plan_training(req)
    if run is not None and (changes := resuming.resume_changes(proj, run, plan, cli)):
        plan.warnings.insert(0, changes)  # said before training, and kept in the run's events
    if dry_run:
        import tomlkit

        from lorakiln.train.run import _toml_ready

        out.print("[bold]resolved config[/]")
        out.print(tomlkit.dumps(_toml_ready(plan.config_doc())), markup=False, highlight=False, soft_wrap=True)
        for line in svc.dry_run_lines(plan, memory=not no_memory):
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    for path, reason in plan.problems:  # a file named `[bold]a.png` is shown as it is
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}")
    for n in plan.notes:
        console.print(f"note: {n}")
    result = svc.run_training(plan, RichProgress(), resume_run=run, force=force)
    if result.skipped:
        out.print(f"already trained with this config and data: {result.final or result.run.root} "
                  "(--force trains again)")
        return
    if not _is_main_process():
        return  # the other processes hold no final file: one "trained" line, from the main process
    verb = "resumed and ran" if result.resumed else "trained"
    if result.resumed and result.first_step >= result.steps:
        out.print(f"{verb} {result.ran()}: run {result.run.id} was already finished, its LoRA is {result.final} "
                  "(`kiln train --force` trains a new run)")
        return
    out.print(f"[bold green]{verb}[/] {result.ran()} in {result.seconds:.0f}s: {result.final}")


def register(app: typer.Typer) -> None:
    app.command(cls=_TrainCommand)(train)
