"""Truncated SVD back to LoRA factors, rank choice (fixed or kohya's dynamic rules), clamping.

Two ways to the singular values of ΔW:
- `svd_dense(ΔW)`: any ΔW (LoHa, LoKr, DoRA, full, checkpoint differences).
- `svd_factored(ups, downs)`: ΔW given as Σ upᵢ @ downᵢ (plain LoRA inputs). QR of the stacked
  factors reduces the SVD to an R×R problem (R = Σ rᵢ) — exact, and far cheaper than the dense
  SVD of an out×in matrix that kohya's svd_merge_lora.py computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry

MIN_SV = 1e-6  # kohya resize_lora.py: a spectrum whose top value is below this is a zero matrix


@dataclass
class Spectrum:
    """Thin SVD of a module's ΔW flattened to (out, in·k·k)."""

    U: torch.Tensor  # (out, n)
    S: torch.Tensor  # (n,), descending
    Vh: torch.Tensor  # (n, in_flat)

    def retained(self, rank: int) -> dict[str, float]:
        """Share of the spectrum kept at `rank`: Frobenius (energy), sum, and S[r-1]/S[0]."""
        s = self.S.double()
        total_sq, total = float((s**2).sum()), float(s.sum())
        if total <= 0:
            return {"fro": 1.0, "sum": 1.0, "min_max_ratio": 1.0}
        r = max(1, min(rank, len(s)))
        return {
            "fro": math.sqrt(float((s[:r] ** 2).sum()) / total_sq),
            "sum": float(s[:r].sum()) / total,
            "min_max_ratio": float(s[r - 1] / s[0]),
        }


def svd_dense(delta: torch.Tensor) -> Spectrum:
    m = delta.reshape(delta.shape[0], -1).to(torch.float32)
    U, S, Vh = torch.linalg.svd(m, full_matrices=False)
    return Spectrum(U, S, Vh)


def svd_factored(up: torch.Tensor, down: torch.Tensor) -> Spectrum:
    """Exact thin SVD of up @ down (up (out, R), down (R, in)) via two QRs and an R×R SVD."""
    up = up.reshape(up.shape[0], -1).to(torch.float32)
    down = down.reshape(down.shape[0], -1).to(torch.float32)
    Qu, Ru = torch.linalg.qr(up)  # (out, R'), (R', R)
    Qd, Rd = torch.linalg.qr(down.T)  # (in, R''), (R'', R)
    Us, S, Vhs = torch.linalg.svd(Ru @ Rd.T, full_matrices=False)
    return Spectrum(Qu @ Us, S, Vhs @ Qd.T)


# -- rank choice ------------------------------------------------------------------------
DynamicRule = Callable[[torch.Tensor, float], int]
DYNAMIC: Registry[DynamicRule] = Registry("dynamic rank method")


def _clip(index: int, n: int) -> int:
    return max(1, min(index, n - 1))


@DYNAMIC.register("sv_ratio")
def _sv_ratio(S: torch.Tensor, x: float) -> int:
    """kohya: keep values above S₀/x; its helper's count + 1."""
    return _clip(int((S > S[0] / x).sum()), len(S)) + 1


@DYNAMIC.register("sv_cumulative")
def _sv_cumulative(S: torch.Tensor, x: float) -> int:
    """kohya: smallest rank whose Σ S reaches share x of the total, + 1."""
    cum = torch.cumsum(S.double(), 0) / float(S.double().sum())
    return _clip(int(torch.searchsorted(cum, torch.tensor([x], dtype=cum.dtype))[0]) + 1, len(S)) + 1


@DYNAMIC.register("sv_fro")
def _sv_fro(S: torch.Tensor, x: float) -> int:
    """kohya: smallest rank whose Σ S² reaches share x² of the total (Frobenius retention x), + 1."""
    sq = S.double() ** 2
    cum = torch.cumsum(sq, 0) / float(sq.sum())
    return _clip(int(torch.searchsorted(cum, torch.tensor([x * x], dtype=cum.dtype))[0]) + 1, len(S)) + 1


@DYNAMIC.register("numerical")
def _numerical(S: torch.Tensor, tol: float) -> int:
    """The numerical rank: values above tol · S₀ (no +1; `kiln lora convert`'s exact default)."""
    return max(1, int((S > S[0] * tol).sum()))


def numerical_tolerance(shape: tuple[int, ...]) -> float:
    """numpy's matrix_rank rule for float32: max dimension · machine epsilon, relative to S₀."""
    out = int(shape[0])
    flat = 1
    for s in shape[1:]:
        flat *= int(s)
    return max(out, flat) * float(torch.finfo(torch.float32).eps)


def choose_rank(S: torch.Tensor, cap: int, method: str | None = None, param: float | None = None) -> int:
    """The rank to keep: `cap`, or the dynamic rule's pick capped at `cap` (kohya's semantics,
    including its +1). A zero spectrum keeps rank 1. Never more than the values that exist."""
    if len(S) == 0 or float(S[0]) <= MIN_SV:
        return 1
    rank = cap
    if method:
        if param is None:
            raise KilnError(f"dynamic method {method} needs a parameter")
        rank = min(DYNAMIC.get(method)(S, float(param)), cap)
    return max(1, min(rank, len(S)))


# the range of each rule's parameter X, as (lowest, highest, says); X = lowest is allowed only for sv_ratio
DYNAMIC_RANGE = {
    "sv_ratio": (1.0, math.inf, "a ratio of at least 1 (keep values above S0 / X)"),
    "sv_fro": (0.0, 1.0, "a share in (0, 1] (of the Frobenius norm to retain)"),
    "sv_cumulative": (0.0, 1.0, "a share in (0, 1] (of the sum of singular values)"),
    "numerical": (0.0, 1.0, "a relative tolerance in (0, 1]"),
}


def dynamic_param_ok(method: str, x: float) -> bool:
    low, high, _ = DYNAMIC_RANGE[method]
    return math.isfinite(x) and (low <= x if method == "sv_ratio" else low < x) and x <= high


# -- back to factors ---------------------------------------------------------------------------
def to_factors(spec: Spectrum, rank: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(up (out, r), down (r, in_flat)) with scale · up @ down = the rank-r truncation, where
    r = min(rank, values that exist). √S goes to each side so fp16/bf16 storage keeps both
    factors in range (kohya puts all of S on up)."""
    r = min(rank, len(spec.S))
    root = torch.sqrt(spec.S[:r] / scale)
    up = spec.U[:, :r] * root
    down = root[:, None] * spec.Vh[:r]
    return up.contiguous(), down.contiguous()


def clamp_quantile(up: torch.Tensor, down: torch.Tensor, q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """kohya's outlier clamp: both factors to ± the q-quantile of |all their values|."""
    values = torch.cat([up.flatten(), down.flatten()]).abs()
    if values.numel() > 1 << 24:  # torch.quantile's input limit; a strided sample is enough
        values = values[:: values.numel() // (1 << 24) + 1]
    hi = float(torch.quantile(values, q))
    return up.clamp(-hi, hi), down.clamp(-hi, hi)


def as_lora_shapes(up: torch.Tensor, down: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Reshape 2-D factors for a conv target: up (out, r, 1, 1), down (r, in, k, k)."""
    if len(shape) != 4:
        return up, down
    r = up.shape[1]
    return up.reshape(shape[0], r, 1, 1), down.reshape(r, shape[1], *shape[2:])


def rel_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """‖approx − exact‖_F / ‖exact‖_F (0 when both are zero; inf for a spurious delta on zero)."""
    e = exact.reshape(-1).double()
    d = float(torch.linalg.vector_norm(approx.reshape(-1).double() - e))
    n = float(torch.linalg.vector_norm(e))
    if n == 0.0:
        return 0.0 if d == 0.0 else math.inf
    return d / n


def rel_error_factored(up_a: torch.Tensor, down_a: torch.Tensor, up_b: torch.Tensor, down_b: torch.Tensor) -> float:
    """rel_error(up_a @ down_a, up_b @ down_b) without forming either product: Frobenius norms and
    the inner product from r×r Gram matrices, in float64 — O((out + in)·r²) instead of O(out·in·r)."""
    ua, da = up_a.reshape(up_a.shape[0], -1).double(), down_a.reshape(down_a.shape[0], -1).double()
    ub, db = up_b.reshape(up_b.shape[0], -1).double(), down_b.reshape(down_b.shape[0], -1).double()
    aa = float(((ua.T @ ua) * (da @ da.T)).sum())
    bb = float(((ub.T @ ub) * (db @ db.T)).sum())
    ab = float(((ua.T @ ub) * (da @ db.T)).sum())
    if bb <= 0.0:
        return 0.0 if aa <= 0.0 else math.inf
    return math.sqrt(max(aa + bb - 2.0 * ab, 0.0) / bb)
