"""Merge LoRAs by the exact weighted sum of their deltas, refactored by truncated SVD.

Per module: exact = Σ wᵢ ΔWᵢ (merge/delta.py); its spectrum from the stacked factors when every
input is a plain LoRA (exact and cheap), else from the dense sum; keep the chosen rank; write
up/down with alpha = alpha_ratio · r, so ΔW_out = alpha_ratio · up @ down. The error reported is
measured on the factors as stored (after the dtype cast), against the exact sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.merge.delta import BaseLookup, Source, module_names, target_shape, weighted_delta, weighted_factors
from lorakiln.merge.report import ModuleReport, product_2d
from lorakiln.merge.svd import (
    DYNAMIC,
    DYNAMIC_RANGE,
    Spectrum,
    dynamic_param_ok,
    as_lora_shapes,
    choose_rank,
    clamp_quantile,
    rel_error,
    rel_error_factored,
    svd_dense,
    svd_factored,
    to_factors,
)


@dataclass(frozen=True)
class RankPolicy:
    """How many directions to keep per module: `rank` (linear / 1×1) and `conv_rank` (k×k convs,
    default `rank`) as caps, optionally a dynamic rule; `None` rank = keep all (exact)."""

    rank: int | None = None
    conv_rank: int | None = None
    method: str | None = None
    param: float | None = None
    alpha_ratio: float = 1.0  # alpha / rank of every written module (1 = kohya's svd_merge)
    clamp: float | None = None  # quantile clamp of the factors (kohya uses 0.99); None = off

    def __post_init__(self) -> None:
        check_rank(self.rank, "--rank")
        check_rank(self.conv_rank, "--conv-rank")
        if self.method is not None:
            check_dynamic(self.method, self.param)
        if self.clamp is not None and not (math.isfinite(self.clamp) and 0 < self.clamp <= 1):
            raise KilnError(f"--clamp-quantile {self.clamp:g}: a quantile lies in (0, 1] (kohya uses 0.99)")
        if not (math.isfinite(self.alpha_ratio) and self.alpha_ratio > 0):
            raise KilnError(f"alpha / rank = {self.alpha_ratio:g}: alpha must be a finite number above 0")

    def cap(self, shape: tuple[int, ...], available: int) -> int:
        conv = len(shape) == 4 and shape[2] * shape[3] > 1
        cap = (self.conv_rank or self.rank) if conv else self.rank
        return available if cap is None else min(cap, available)


MAX_RANK = 65536  # wider than any layer of SD1.5/SDXL (their widest is 10240); beyond is a typo


def check_rank(rank: int | None, option: str = "--rank") -> int | None:
    """A rank is a whole number in 1..MAX_RANK (None = keep every direction); 0 or below is
    refused, not read as 'keep', and so is a rank no layer could have."""
    if rank is None:
        return None
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_RANK:
        raise KilnError(f"{option} {rank}: a rank must be a whole number from 1 to {MAX_RANK} "
                        f"(leave {option} out to keep every direction, exactly)")
    return rank


def check_dynamic(method: str, param: float | None) -> None:
    """The dynamic rule exists and its parameter lies in its range (sv_ratio >= 1; shares in (0, 1])."""
    DYNAMIC.get(method)
    if param is None or not dynamic_param_ok(method, float(param)):
        shown = "with no X" if param is None else f"{param:g}"
        raise KilnError(f"--dynamic {method} {shown}: X must be {DYNAMIC_RANGE[method][2]}")


def lora_tensors(name: str, up: torch.Tensor, down: torch.Tensor, alpha: float,
                 dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {f"{name}.lora_up.weight": up.to(dtype), f"{name}.lora_down.weight": down.to(dtype),
            f"{name}.alpha": torch.tensor(float(alpha), dtype=dtype)}


_TOO_LARGE = ("its values are too large to compute with in float32 (extreme values in an input, "
              "scaled by its weight); nothing was written")


def _require_finite(name: str, what: str, *tensors: torch.Tensor) -> None:
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise KilnError(f"module {name}: NaN/Inf in {what}: {_TOO_LARGE}")


def _spectrum(name: str, exact: torch.Tensor | None, factors: tuple[torch.Tensor, torch.Tensor] | None) -> Spectrum:
    """The SVD of a module's change; a non-finite change or a failed SVD is a KilnError naming the module."""
    _require_finite(name, "its change", *(factors if factors is not None else (exact,)))
    try:
        spec = svd_factored(*factors) if factors is not None else svd_dense(exact)
    except torch.linalg.LinAlgError:
        raise KilnError(f"module {name}: its change holds NaN/Inf once multiplied out (the SVD cannot run): "
                        f"{_TOO_LARGE}") from None
    _require_finite(name, "the spectrum of its change", spec.S)
    return spec


def refactor(name: str, exact: torch.Tensor | None, factors: tuple[torch.Tensor, torch.Tensor] | None,
             shape: tuple[int, ...], policy: RankPolicy, dtype: torch.dtype,
             scale: float | None = None) -> tuple[dict[str, torch.Tensor], ModuleReport]:
    """One module's ΔW, given dense (`exact`) or as `factors` (up, down) -> LoRA tensors + report.
    `scale` (alpha / rank of the result) defaults to the policy's alpha_ratio."""
    scale = policy.alpha_ratio if scale is None else scale
    spec = _spectrum(name, exact, factors)
    r = choose_rank(spec.S, policy.cap(shape, len(spec.S)), policy.method, policy.param)
    up, down = to_factors(spec, r, scale)
    _require_finite(name, "its refactored factors", up, down)
    if policy.clamp:
        up, down = clamp_quantile(up, down, policy.clamp)
    up, down = as_lora_shapes(up.to(dtype), down.to(dtype), shape)
    if factors is not None:
        err = rel_error_factored(up.to(torch.float64) * scale, down, *factors)
    else:
        err = rel_error(scale * product_2d(up, down), exact)
    report = ModuleReport(name, rank=r, error=err, retained=spec.retained(r)["fro"])
    return lora_tensors(name, up, down, scale * r, dtype), report


def merge_svd(sources: list[Source], policy: RankPolicy, dtype: torch.dtype, base: BaseLookup | None = None,
              on_module: Callable[[ModuleReport], None] | None = None
              ) -> tuple[dict[str, torch.Tensor], list[ModuleReport]]:
    """The exact weighted merge of `sources`, written back as LoRA factors per `policy`."""
    if all(s.weight == 0 for s in sources):
        raise KilnError("every input has weight 0: the merge would be empty")
    tensors: dict[str, torch.Tensor] = {}
    reports: list[ModuleReport] = []
    for name in module_names(sources):
        live = [s for s in sources if name in s.model.modules and s.weight != 0]
        if not live:
            continue
        shape = target_shape(name, sources, base)
        factors = weighted_factors(name, live)
        exact = None if factors is not None else weighted_delta(name, live, shape, base)
        t, rep = refactor(name, exact, factors, shape, policy, dtype)
        tensors.update(t)
        reports.append(rep)
        if on_module:
            on_module(rep)
    return tensors, reports
