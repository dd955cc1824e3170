"""Weighted sums of LoRA deltas — the quantity stacking LoRAs in A1111/ComfyUI computes.

merged ΔW = Σᵢ wᵢ · ΔWᵢ per module, ΔWᵢ = alphaᵢ/rᵢ · upᵢ ∘ downᵢ (conv included), LoHa/LoKr/
full rebuilt to ΔW, DoRA applied against the base weight. A module missing from an input
counts as zero for it. kohya's merge_lora.py instead sums ups and downs separately (cross
terms) and applies the ratio to both (reference/eval-merge-formats.md §2.2) — not done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModel, LoraModule, apply_dora, conv_shape, delta_weight

BaseLookup = Callable[[str], "torch.Tensor | None"]  # kohya module name -> base weight


@dataclass
class Source:
    """One input: a parsed LoRA, its weight, its file name (no path) and metadata."""

    name: str
    model: LoraModel
    weight: float = 1.0
    metadata: dict[str, str] = field(default_factory=dict)


class DoraNeedsBase(KilnError):
    def __init__(self, source: str, module: str):
        super().__init__(
            f"{source}: module {module} is DoRA (it has dora_scale); its ΔW depends on the base "
            "model's weights, so pass the base checkpoint with --base FILE.safetensors")


def module_names(sources: list[Source]) -> list[str]:
    return sorted({n for s in sources for n in s.model.modules})


def target_shape(name: str, sources: list[Source], base: BaseLookup | None = None) -> tuple[int, ...]:
    """The target weight's shape: the base weight's if known, else the most specific one an
    input states (a conv LoRA's 4-d factors beat a LoHa's flattened ones), else the name rule."""
    w = base(name) if base else None
    shapes = [(s.name, tuple(s.model.modules[name].shape)) for s in sources if name in s.model.modules]
    best = tuple(w.shape) if w is not None else max((sh for _, sh in shapes), key=len)
    best = conv_shape(name, best)
    numel = _numel(best)
    for src, sh in shapes:
        if _numel(sh) != numel:
            raise KilnError(f"module {name}: {src} has shape {list(sh)} but the target is {list(best)}; "
                            "the files are for different model architectures")
    return best


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def module_delta(source: str, module: LoraModule, shape: tuple[int, ...], base: BaseLookup | None) -> torch.Tensor:
    """ΔW of one input's module at weight 1, DoRA included (against the base weight)."""
    d = delta_weight(module, shape)
    if module.dora_scale is None:
        return d
    w = base(module.name) if base else None
    if w is None:
        raise DoraNeedsBase(source, module.name)
    w = w.to(torch.float32).reshape(shape)
    return apply_dora(w, d, module.dora_scale) - w


def weighted_delta(name: str, sources: list[Source], shape: tuple[int, ...],
                   base: BaseLookup | None = None) -> torch.Tensor:
    """The exact Σ wᵢ ΔWᵢ of module `name` in float32."""
    total = torch.zeros(shape, dtype=torch.float32)
    for s in sources:
        m = s.model.modules.get(name)
        if m is not None and s.weight != 0:
            total += s.weight * module_delta(s.name, m, shape, base)
    return total


def lora_factors(module: LoraModule) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(up (out, r), down (r, in·k·k)) with ΔW = up @ down, scale folded into up; None unless
    the module is a plain LoRA/LoCon (Tucker mid folded into down) without DoRA."""
    if module.algo != "lora" or module.dora_scale is not None:
        return None
    t = module.tensors
    up = t["lora_up.weight"].to(torch.float32)
    down = t["lora_down.weight"].to(torch.float32)
    up2 = up.reshape(up.shape[0], -1) * module.scale
    mid = t.get("lora_mid.weight")
    if mid is not None:
        down = torch.einsum("ij...,jn->in...", mid.to(torch.float32), down.reshape(down.shape[0], -1))
    return up2, down.reshape(down.shape[0], -1)


def weighted_factors(name: str, sources: list[Source]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Σ wᵢ ΔWᵢ as stacked factors (up (out, Σr), down (Σr, in)), or None if any input's module
    is not a plain LoRA (then the dense sum is needed)."""
    ups, downs = [], []
    for s in sources:
        m = s.model.modules.get(name)
        if m is None or s.weight == 0:
            continue
        f = lora_factors(m)
        if f is None:
            return None
        ups.append(f[0] * s.weight)
        downs.append(f[1])
    if not ups:
        return None
    return torch.cat(ups, 1), torch.cat(downs, 0)
