"""Bake LoRAs into a single-file checkpoint: W += Σ wᵢ ΔWᵢ on exactly the targeted weights.

`plan_bake` matches every LoRA module to a checkpoint weight (merge/checkpoint_keys.py), refusing
shape mismatches and listing modules that found no target; `bake_tensor` updates one tensor in
float32 and casts it back to the checkpoint's dtype. Untargeted tensors are passed through
untouched (bit for bit). DoRA modules are applied against the original weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModule, bias_delta
from lorakiln.merge.checkpoint_keys import Target
from lorakiln.merge.delta import Source, module_delta


@dataclass
class Patch:
    source: Source
    module: LoraModule
    target: Target


@dataclass
class BakePlan:
    weights: dict[str, list[Patch]] = field(default_factory=dict)  # checkpoint key -> patches
    biases: dict[str, list[Patch]] = field(default_factory=dict)  # bias key -> full-module patches
    unmatched: list[str] = field(default_factory=list)  # "file: module" that found no target
    applied: int = 0  # module applications planned


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def plan_bake(targets: dict[str, Target], sources: list[Source]) -> BakePlan:
    plan = BakePlan()
    for s in sources:
        if s.weight == 0:
            continue
        for name, m in sorted(s.model.modules.items()):
            t = targets.get(name)
            if t is None:
                plan.unmatched.append(f"{s.name}: {name}")
                continue
            if _numel(m.shape) != _numel(t.shape):
                raise KilnError(f"{s.name}: module {name} has shape {list(m.shape)} but the checkpoint weight "
                                f"{t.key} is {list(t.shape)}; the LoRA is for another model")
            plan.weights.setdefault(t.key, []).append(Patch(s, m, t))
            if t.bias_key and "diff_b" in m.tensors:
                plan.biases.setdefault(t.bias_key, []).append(Patch(s, m, t))
            plan.applied += 1
    return plan


def bake_tensor(tensor: torch.Tensor, patches: list[Patch]) -> torch.Tensor:
    """The checkpoint tensor with every patch's wᵢ·ΔWᵢ added (rows of a packed tensor where the
    target says so), in the tensor's own dtype."""
    w = tensor.to(torch.float32).clone()
    original = tensor.to(torch.float32)
    for p in patches:
        rows = p.target.rows or slice(None)
        region = original[rows].reshape(p.target.shape)
        delta = module_delta(p.source.name, p.module, p.target.shape, lambda _name, r=region: r)
        w[rows] += p.source.weight * delta.reshape(w[rows].shape)
    return w.to(tensor.dtype)


def bake_bias(tensor: torch.Tensor, patches: list[Patch]) -> torch.Tensor:
    b = tensor.to(torch.float32).clone()
    for p in patches:
        d = bias_delta(p.module)
        if d is not None:
            b += p.source.weight * d.reshape(b.shape)
    return b.to(tensor.dtype)
