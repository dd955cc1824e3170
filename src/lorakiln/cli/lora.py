"""kiln lora ...: inspect LoRA naming; convert files for a loader."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lorakiln.cli.merge import MAX_RANK

lora_app = typer.Typer(help="LoRA files and names: what training creates, in kohya's format.", no_args_is_help=True)


@lora_app.command("keys")
def keys(
    family: Annotated[str, typer.Option(help="Model family: sd15, sdxl (or tiny-sd15, tiny-sdxl).")] = "sdxl",
    algo: Annotated[str, typer.Option(help="Adapter: lora, locon, loha, lokr.")] = "lora",
    conv_dim: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="Rank for 3x3 convs (adds ResNet/sampler convs).")] = None,
    dim: Annotated[int, typer.Option(min=1, max=MAX_RANK, help="Rank (only shown with --tensors).")] = 16,
    no_te: Annotated[bool, typer.Option("--no-te", help="U-Net only (no text-encoder modules).")] = False,
    tensors: Annotated[bool, typer.Option("--tensors", help="Print every tensor key with its shape.")] = False,
    count: Annotated[bool, typer.Option("--count", help="Print only the number of modules per part.")] = False,
) -> None:
    """Print, one per line, the module names training would create on the full architecture."""
    from collections import Counter

    from lorakiln.train.families import FAMILIES
    from lorakiln.train.network import NetworkSpec, planned_modules, planned_tensors
    from lorakiln.train.network_naming import part_of

    fam = FAMILIES.get(family)
    spec = NetworkSpec(algo=algo, dim=dim, alpha=dim / 2, conv_dim=conv_dim, text_encoder=not no_te)
    if tensors:
        for key, shape in planned_tensors(fam, spec).items():
            typer.echo(f"{key}\t{list(shape)}")
        return
    names = planned_modules(fam, spec)
    if count:
        for part, n in Counter(part_of(n) for n in names).items():
            typer.echo(f"{part}\t{n}")
        return
    typer.echo("\n".join(names))


@lora_app.command("convert")
def convert(
    lora: Annotated[Path, typer.Argument(help="The LoRA / LyCORIS / DoRA file to convert.")],
    output: Annotated[Path, typer.Argument(help="The file to write.")],
    target: Annotated[str, typer.Option("--target", help="The loader that must apply the file exactly: "
                                        "comfyui, a1111 (A1111 and Forge) or diffusers.")],
    rank: Annotated[Optional[int], typer.Option(min=1, max=MAX_RANK, help="Cap the rank of rewritten modules (default: each module's "
                                                "exact rank; DoRA changes are usually full rank).")] = None,
    base: Annotated[Optional[Path], typer.Option(help="Base checkpoint (.safetensors) the LoRA was trained on: "
                                                 "needed when DoRA modules must be rewritten.")] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp16, bf16 or fp32 (default: the input's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo even if the output was made from the same input.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a version of a LoRA that TARGET applies exactly as trained: the modules it would apply
    wrongly (DoRA, LoHa/LoKr in diffusers, ...) become plain LoRA by exact SVD; errors are reported."""
    from lorakiln.cli.common import RichProgress
    from lorakiln.cli.merge import _show
    from lorakiln.merge.files import dtype_of
    from lorakiln.services.convert import convert as run

    report = run(lora, output, target.lower(), rank=rank, base=base, dtype=dtype_of(dtype), force=force,
                 progress=RichProgress(quiet=as_json))
    _show(report, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(lora_app, name="lora")
