"""Exact merge by concatenating ranks, with per-part scales (reference/eval-merge-formats.md §2.2).

With D = Σ dᵢ and the output's alpha α_out, part i's up and down are both multiplied by
sᵢ = √(|wᵢ| · (αᵢ/dᵢ) · D / α_out) (the sign of wᵢ on up), so that
(α_out / D) · Σ up'ᵢ down'ᵢ = Σ wᵢ (αᵢ/dᵢ) upᵢ downᵢ exactly. kohya's --concat keeps the first
model's alpha while the rank grows, diluting each part by dᵢ/D. Tucker (lora_mid) parts are
joined block-diagonally. Only plain LoRA/LoCon parts can be concatenated.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModule, parse_lora
from lorakiln.merge.delta import Source, lora_factors, module_names, target_shape, weighted_factors
from lorakiln.merge.report import ModuleReport
from lorakiln.merge.svd import rel_error_factored


def _check_part(source: Source, m: LoraModule) -> None:
    if m.algo != "lora" or m.dora_scale is not None:
        kind = "DoRA" if m.dora_scale is not None else m.algo
        raise KilnError(f"{source.name}: module {m.name} is {kind}; --concat joins plain LoRA/LoCon "
                        "factors only; merge with --rank N instead (exact sum of deltas, then SVD)")


def _block_diag_mid(mids: list[torch.Tensor]) -> torch.Tensor:
    d = sum(m.shape[0] for m in mids)
    out = mids[0].new_zeros(d, d, *mids[0].shape[2:])
    at = 0
    for m in mids:
        n = m.shape[0]
        out[at:at + n, at:at + n] = m
        at += n
    return out


def concat_module(name: str, parts: list[tuple[Source, LoraModule]], alpha_out: float | None,
                  dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], int, float]:
    """(tensors, total rank D, alpha_out) for one module; alpha_out defaults to D (scale 1)."""
    for s, m in parts:
        _check_part(s, m)
    mids = [m.tensors.get("lora_mid.weight") for _, m in parts]
    if any(x is None for x in mids) and not all(x is None for x in mids):
        raise KilnError(f"module {name}: some inputs use a Tucker lora_mid and some do not; "
                        "merge with --rank N instead")
    total = sum(m.rank for _, m in parts)
    alpha = float(total if alpha_out is None else alpha_out)
    ups, downs = [], []
    for s, m in parts:
        k = math.sqrt(abs(s.weight) * m.scale * total / alpha)
        ups.append(m.tensors["lora_up.weight"].to(torch.float32) * (k * math.copysign(1.0, s.weight)))
        downs.append(m.tensors["lora_down.weight"].to(torch.float32) * k)
    t = {f"{name}.lora_up.weight": torch.cat(ups, 1).to(dtype),
         f"{name}.lora_down.weight": torch.cat(downs, 0).to(dtype),
         f"{name}.alpha": torch.tensor(alpha, dtype=dtype)}
    if mids[0] is not None:
        t[f"{name}.lora_mid.weight"] = _block_diag_mid([x.to(torch.float32) for x in mids]).to(dtype)
    return t, total, alpha


def merge_concat(sources: list[Source], dtype: torch.dtype, alpha_out: float | None = None,
                 on_module: Callable[[ModuleReport], None] | None = None
                 ) -> tuple[dict[str, torch.Tensor], list[ModuleReport]]:
    """Concatenate every module's parts; the reported error checks the result against the
    exact weighted sum (only rounding remains)."""
    if all(s.weight == 0 for s in sources):
        raise KilnError("every input has weight 0: the merge would be empty")
    tensors: dict[str, torch.Tensor] = {}
    reports: list[ModuleReport] = []
    for name in module_names(sources):
        parts = [(s, s.model.modules[name]) for s in sources if name in s.model.modules and s.weight != 0]
        if not parts:
            continue
        target_shape(name, sources)  # refuses inputs whose shapes disagree
        t, total, _ = concat_module(name, parts, alpha_out, dtype)
        up, down = lora_factors(parse_lora(t, "concat").modules[name])
        rep = ModuleReport(name, rank=total, error=rel_error_factored(up, down, *weighted_factors(name, [s for s, _ in parts])))
        tensors.update(t)
        reports.append(rep)
        if on_module:
            on_module(rep)
    return tensors, reports
