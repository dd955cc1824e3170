"""Change a LoRA's rank (fixed or dynamic), keeping its effective strength.

Like kohya's resize_lora.py: a plain LoRA module keeps its scale alpha/rank, so
new_alpha = old_alpha / old_rank · new_rank; the kept directions are the top singular vectors
of its ΔW. LoHa/LoKr/full modules (and DoRA, against the base) are rebuilt to ΔW and come out
as plain LoRA with alpha = rank. Retained energy (Frobenius share of the spectrum) is reported
per module.
"""

from __future__ import annotations

from typing import Callable

import torch

from lorakiln.formats.lora_model import LoraModel, conv_shape
from lorakiln.merge.combine import RankPolicy, refactor
from lorakiln.merge.delta import BaseLookup, lora_factors, module_delta
from lorakiln.merge.report import ModuleReport


def resize_model(model: LoraModel, policy: RankPolicy, dtype: torch.dtype, source: str = "LoRA",
                 base: BaseLookup | None = None, on_module: Callable[[ModuleReport], None] | None = None
                 ) -> tuple[dict[str, torch.Tensor], list[ModuleReport]]:
    tensors: dict[str, torch.Tensor] = {}
    reports: list[ModuleReport] = []
    for name, m in sorted(model.modules.items()):
        w = base(name) if base else None
        shape = tuple(w.shape) if w is not None else conv_shape(name, m.shape)
        factors = lora_factors(m)
        exact = None if factors is not None else module_delta(source, m, shape, base)
        scale = m.scale if factors is not None else 1.0
        t, rep = refactor(name, exact, factors, shape, policy, dtype, scale=scale)
        rep.old_rank = m.rank
        tensors.update(t)
        reports.append(rep)
        if on_module:
            on_module(rep)
    return tensors, reports


def resize_comment(old_dim: str, policy: RankPolicy, previous: str, written: list[int] | None = None) -> str:
    """kohya's ss_training_comment wording; a rank above every module's full rank (`written`:
    the ranks the modules came out with) is stated as the exact result it is."""
    if policy.method:
        return f"Dynamic resize with {policy.method}: {policy.param} from {old_dim}; {previous}"
    caps = [c for c in (policy.rank, policy.conv_rank) if c]
    if written and caps and max(written) < min(caps):
        return f"dimension is resized from {old_dim} to {max(written)} (every direction kept, exact); {previous}"
    conv = f" (conv: {policy.conv_rank})" if policy.conv_rank and policy.conv_rank != policy.rank else ""
    return f"dimension is resized from {old_dim} to {policy.rank}{conv}; {previous}"

