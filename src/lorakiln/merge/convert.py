"""Rewrite a LoRA so that a chosen loader applies it exactly as it was trained.

Per module: if every loader of the target already applies it exactly (merge/compat.py), its
tensors are copied unchanged. Otherwise its full change is computed the way LyCORIS applies it
— ΔW of LoHa/LoKr/Tucker/full, and for DoRA m · (W + ΔW) / ‖W + ΔW‖ − W against the base
weight — and written as a plain LoRA by truncated SVD (Eckart–Young: the best approximation
of each rank). The default rank is the delta's numerical rank — exact up to float rounding —
where that fits, i.e. where the factors are smaller than the weight they change; a DoRA change
is usually of full rank (the magnitude rescales W itself), so there the default stops at the
largest rank that fits, and `rank` chooses any other. The error is reported per module and
overall.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.loaders import TARGETS
from lorakiln.formats.lora_model import LoraModel, LoraModule, conv_shape
from lorakiln.merge.combine import RankPolicy, check_rank, refactor
from lorakiln.merge.compat import module_verdicts
from lorakiln.merge.delta import BaseLookup, module_delta
from lorakiln.merge.report import ModuleReport
from lorakiln.merge.svd import numerical_tolerance


LOST_BIAS = "its bias change (diff_b) has no LoRA form and was left out"


def kept_tensors(module: LoraModule) -> dict[str, torch.Tensor]:
    """A module's tensors as they were in the file (alpha and dora_scale included)."""
    out = {f"{module.name}.{s}": t for s, t in module.tensors.items()}
    if module.alpha is not None:
        out[f"{module.name}.alpha"] = torch.tensor(float(module.alpha))
    if module.dora_scale is not None:
        out[f"{module.name}.dora_scale"] = module.dora_scale
    return out


def fit_rank(shape: tuple[int, ...]) -> int:
    """The largest rank whose factors hold fewer values than the weight itself: r·(out + in) ≤ out·in."""
    out, flat = int(shape[0]), math.prod(int(s) for s in shape[1:])
    return max(1, (out * flat) // (out + flat))


def policy_for(shape: tuple[int, ...], rank: int | None) -> RankPolicy:
    """The exact (numerical) rank, capped at `rank` when given, else at the rank that still
    fits (fit_rank); alpha = rank (scale 1)."""
    cap = rank if rank else fit_rank(shape)
    return RankPolicy(rank=cap, conv_rank=cap, method="numerical", param=numerical_tolerance(shape))


def bake_module(source: str, module: LoraModule, rank: int | None, dtype: torch.dtype,
                base: BaseLookup | None) -> tuple[dict[str, torch.Tensor], ModuleReport]:
    """One module's exact change as plain-LoRA tensors, with its error and ‖ΔW‖."""
    w = base(module.name) if base else None
    shape = tuple(w.shape) if w is not None else conv_shape(module.name, module.shape)
    exact = module_delta(source, module, shape, base)
    if not bool(torch.isfinite(exact).all()):
        raise KilnError(f"{source}: module {module.name}: its change holds NaN/Inf on this base model")
    tensors, rep = refactor(module.name, exact, None, shape, policy_for(shape, rank), dtype, scale=1.0)
    rep.old_rank = module.rank
    rep.norm = float(exact.double().norm())
    return tensors, rep


def convert_model(model: LoraModel, target: str, *, rank: int | None = None, dtype: torch.dtype = torch.float16,
                  source: str = "LoRA", base: BaseLookup | None = None,
                  on_module: Callable[[ModuleReport], None] | None = None
                  ) -> tuple[dict[str, torch.Tensor], list[ModuleReport]]:
    """(tensors, per-module reports) of `model` rewritten for `target` (comfyui, a1111, diffusers)."""
    if target not in TARGETS:
        raise KilnError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    check_rank(rank)
    tensors: dict[str, torch.Tensor] = {}
    reports: list[ModuleReport] = []
    for name, m in sorted(model.modules.items()):
        verdicts = module_verdicts(m, TARGETS[target], base)
        wrong = sorted({f"{n}: {v.reason}" for n, v in verdicts.items() if not v.exact})
        if not wrong and not (rank and m.rank and m.rank > rank):
            tensors.update(kept_tensors(m))
            rep = ModuleReport(name, rank=m.rank, error=0.0, old_rank=m.rank, note="kept")
        else:
            t, rep = bake_module(source, m, rank, dtype, base)
            tensors.update(t)
            rep.note = "; ".join(wrong) or f"rank {m.rank} above --rank {rank}"
            if "diff_b" in m.tensors:
                rep.note += f"; {LOST_BIAS}"
        reports.append(rep)
        if on_module:
            on_module(rep)
    return tensors, reports


def overall_error(reports: list[ModuleReport]) -> float | None:
    """‖result − exact‖ / ‖exact‖ over every rewritten module together (Frobenius)."""
    num = den = 0.0
    for r in reports:
        if r.norm is None or r.error is None:
            continue
        num += (r.error * r.norm) ** 2
        den += r.norm ** 2
    return math.sqrt(num / den) if den else None
