"""X/Y/Z plot axes: what a grid varies and how each value changes a cell (A1111's X/Y/Z plot).

An axis is `KIND=VALUES`, e.g. `weight=0.6,0.8,1`, `checkpoint=all`, `prompt=-000010,-000008`,
`seed=1-4`, `cfg=5,7`, `steps=20,28`, `sampler=euler_a,"DPM++ 2M Karras"`. Every kind is a
record in AXES (parse, apply, label), so adding one is one entry. Cells are planned as pure
data; every cell of a grid shares the base seed unless the seed itself is an axis, so the
differences come from the axes.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any, Callable, Sequence

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry
from lorakiln.evaluate.prompts import float_values, in_range, int_values, prompt_sr, split_values


@dataclass(frozen=True)
class Cell:
    """Everything one grid image depends on. `checkpoint`/`weight` are the main LoRA's
    (a run checkpoint or the first --lora); LoRAs written in the prompt come on top."""

    prompt: str
    negative: str = ""
    seed: int = 1
    cfg: float = 7.0
    steps: int = 20
    sampler: str = "euler_a"
    checkpoint: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class AxisKind:
    parse: Callable[[str, "AxisContext"], list[Any]]
    apply: Callable[[Cell, Any, "AxisContext"], Cell]
    label: Callable[[Any, "AxisContext"], str]
    notes: str = ""


@dataclass
class AxisContext:
    """What parsing needs from outside: the run's checkpoints (label -> file) and the search term."""

    checkpoints: dict[str, str] | None = None  # e.g. {"epoch 2": ".../kafka-000002.safetensors"}
    search: str | None = None  # Prompt S/R: the first value


@dataclass(frozen=True)
class Axis:
    kind: str
    values: list[Any]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.values)


AXES: Registry[AxisKind] = Registry("grid axis")


def _checkpoints(text: str, ctx: AxisContext) -> list[str]:
    avail = ctx.checkpoints or {}
    if not avail:
        raise KilnError("a checkpoint axis needs a run with checkpoints (kiln grid RUN) or --lora files")
    labels = list(avail)
    t = text.strip().lower()
    if t == "all":
        return labels
    n = last_count(text)
    if n is not None:
        return labels[-n:]
    return [_match_checkpoint(v, avail) for v in split_values(text)]


def last_count(text: str) -> int | None:
    """N for `last` (1) or `last:N` (N >= 1); None for any other text; an error for a bad N."""
    t = text.strip().lower()
    if not t.startswith("last"):
        return None
    n = t[4:].strip().removeprefix(":").strip() or "1"
    if not n.isdigit() or int(n) < 1:
        raise KilnError(f"{text.strip()!r}: write last or last:N with N a whole number from 1")
    return int(n)


def _match_checkpoint(value: str, avail: dict[str, str]) -> str:
    """A label for a value given as the label, an epoch number, a file name or a file stem."""
    for label, path in avail.items():
        name = PurePath(path).name
        stem = PurePath(path).stem
        epoch = stem.rsplit("-", 1)[-1]
        if value in (label, name, stem) or (value.isdigit() and epoch.isdigit() and int(epoch) == int(value)):
            return label
    raise KilnError(f"checkpoint {value!r} is not among: {', '.join(avail)}")


def _sr(text: str, ctx: AxisContext) -> list[str]:
    """As A1111: a replacement may be empty (`prompt=-000010,` also draws the final file)."""
    vals = [v.strip() for row in csv.reader(io.StringIO(text), skipinitialspace=True) for v in row]
    if not vals or not vals[0]:
        raise KilnError("a prompt axis needs values: the text to search for first, then its replacements")
    ctx.search = vals[0]
    return vals


def _sampler(text: str, ctx: AxisContext) -> list[str]:
    from lorakiln.evaluate.infotext import sampler_key

    return [sampler_key(v) for v in split_values(text)]


def _sampler_label(v: str, ctx: AxisContext) -> str:
    from lorakiln.evaluate.infotext import sampler_label

    return sampler_label(v)


def _apply_sr(cell: Cell, value: str, ctx: AxisContext) -> Cell:
    p, n = prompt_sr(cell.prompt, cell.negative, ctx.search or value, value)
    return replace(cell, prompt=p, negative=n)


AXES.register("checkpoint", AxisKind(
    _checkpoints, lambda c, v, ctx: replace(c, checkpoint=(ctx.checkpoints or {})[v]), lambda v, ctx: v,
    "checkpoints of the run: all, last, last:N, epoch numbers or file names"))
# each number's range, as the [eval] settings give it (config/eval.py); seeds as torch takes them
AXES.register("weight", AxisKind(
    lambda t, ctx: in_range(float_values(t), -10, 10, "weight"), lambda c, v, ctx: replace(c, weight=float(v)), lambda v, ctx: f"weight {v:g}",
    "weight of the main LoRA (the run's checkpoint or the first --lora)"))
AXES.register("prompt", AxisKind(_sr, _apply_sr, lambda v, ctx: str(v) if v else '""',
                                 "Prompt S/R: the first value is searched for, each value replaces it"))
AXES.register("seed", AxisKind(lambda t, ctx: in_range(int_values(t), 0, 2**64 - 1, "seed"), lambda c, v, ctx: replace(c, seed=int(v)),
                               lambda v, ctx: f"seed {v}"))
AXES.register("cfg", AxisKind(lambda t, ctx: in_range(float_values(t), 0, 100, "CFG"), lambda c, v, ctx: replace(c, cfg=float(v)),
                              lambda v, ctx: f"CFG {v:g}"))
AXES.register("steps", AxisKind(lambda t, ctx: in_range(int_values(t), 1, 1000, "steps"), lambda c, v, ctx: replace(c, steps=int(v)),
                                lambda v, ctx: f"{v} steps"))
AXES.register("sampler", AxisKind(_sampler, lambda c, v, ctx: replace(c, sampler=v), _sampler_label))
ALIASES = {"epoch": "checkpoint", "epochs": "checkpoint", "checkpoints": "checkpoint", "weights": "weight",
           "sr": "prompt", "prompt_sr": "prompt", "seeds": "seed", "cfg_scale": "cfg", "scale": "cfg"}


def parse_axis(spec: str, ctx: AxisContext) -> tuple[Axis, AxisContext]:
    """`KIND=VALUES` -> (axis, its own context copy: a Prompt S/R axis remembers its search term)."""
    if "=" not in spec:
        raise KilnError(f"axis {spec!r}: write KIND=VALUES, KIND one of {', '.join(AXES.names())}")
    kind, text = (s.strip() for s in spec.split("=", 1))
    kind = ALIASES.get(kind.lower(), kind.lower())
    ax = AXES.get(kind)
    own = AxisContext(ctx.checkpoints, None)
    try:
        values = ax.parse(text, own)
    except KilnError as e:
        raise KilnError(f"bad axis {spec!r}: {str(e).removeprefix(repr(text) + ': ')}") from None
    if not values:
        raise KilnError(f"axis {spec!r} has no values")
    return Axis(kind, values, [ax.label(v, own) for v in values]), own


def plan_cells(base: Cell, axes: Sequence[tuple[Axis, AxisContext] | None]) -> dict[tuple[int, int, int], Cell]:
    """(x, y, z) -> Cell for axes X, Y, Z (None or missing = a single position)."""
    single = (Axis("none", [None], [""]), AxisContext())
    dims = [a if a is not None else single for a in list(axes)[:3]]
    dims += [single] * (3 - len(dims))
    out: dict[tuple[int, int, int], Cell] = {}
    for iz, vz in enumerate(dims[2][0].values):
        for iy, vy in enumerate(dims[1][0].values):
            for ix, vx in enumerate(dims[0][0].values):
                cell = base
                for (axis, ctx), v in zip(dims, (vx, vy, vz)):
                    if axis.kind != "none":
                        cell = AXES.get(axis.kind).apply(cell, v, ctx)
                out[(ix, iy, iz)] = cell
    return out
