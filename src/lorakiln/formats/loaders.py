"""How each inference loader applies a kohya/LyCORIS module, as small pure functions, and whether
a file applies in it exactly as it was trained (docs/models.md, "What each loader applies").

The reference is LyCORIS, the library that trains DoRA/LoHa/LoKr files:
W' = m · (W + ΔW) / ‖W + ΔW‖, the norm taken per output row when the magnitude m is stored as
[out, 1, …] (LyCORIS ≥ 3.2 default, PEFT) and per input column when it is [1, in, …]
(`lora_model.apply_dora`). Each loader's rule below re-states, from reading its source, what it
computes instead — including the plain tensor broadcasting it does with the magnitude as stored,
so a shape it does not expect gives here what it gives there (a wrong matrix, or an error).
Plain LoRA/LoCon/LoHa/LoKr deltas are the same in every loader that loads the kind (checked
against LyCORIS in tests/test_lora_model.py); strength s multiplies the change W' − W in all
three UIs, so exactness is judged at strength 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry
from lorakiln.formats.lora_model import LoraModule, apply_dora, dora_axis

EXACT_RTOL = 1e-3  # relative Frobenius difference below which a loader counts as exact (float32 noise is ~1e-6)


def _row_norm(w: torch.Tensor) -> torch.Tensor:
    """‖w‖ per output row, shaped [out, 1, …]."""
    return w.reshape(w.shape[0], -1).norm(dim=1, keepdim=True).reshape(w.shape[0], *[1] * (w.dim() - 1))


def _col_norm(w: torch.Tensor) -> torch.Tensor:
    """‖w‖ per input column (over output rows and kernel), shaped [1, in, …]."""
    t = w.transpose(0, 1)
    return t.reshape(t.shape[0], -1).norm(dim=1, keepdim=True).reshape(t.shape[0], *[1] * (w.dim() - 1)).transpose(0, 1)


def lycoris_dora(w: torch.Tensor, delta: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The reference: what the trainer computed (axis read from the magnitude's shape)."""
    return apply_dora(w, delta, m)


def comfyui_dora(w: torch.Tensor, delta: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """ComfyUI `weight_decompose` (comfy/weight_adapter/base.py) and Forge since PR #2856: a
    magnitude whose first size equals the output width is divided by the row norm of the *base*
    weight W, not of W + ΔW; any other magnitude by the column norm of W + ΔW."""
    merged = w + delta
    norm = _row_norm(w) if m.shape[0] == w.shape[0] else _col_norm(merged)
    return merged * (m / (norm + torch.finfo(torch.float32).eps))


def a1111_dora(w: torch.Tensor, delta: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A1111 `NetworkModule.apply_weight_decompose` (extensions-builtin/Lora/network.py, PR #15160):
    always the column norm of W + ΔW, whatever shape the magnitude has."""
    merged = w + delta
    return merged * (m / _col_norm(merged))


def diffusers_dora(w: torch.Tensor, delta: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """diffusers' `lora_state_dict` drops every `dora_scale` key of a kohya SD/SDXL file with a
    warning: the plain ΔW is applied, the magnitude is lost."""
    return w + delta


def _loads_everything(module: LoraModule) -> str | None:
    return None


def _diffusers_loads(module: LoraModule) -> str | None:
    """`_convert_non_diffusers_lora_to_diffusers` maps only lora_down/lora_up/alpha/dora_scale and
    raises ValueError for any key left over."""
    if module.algo != "lora":
        kind = {"loha": "LoHa", "lokr": "LoKr", "full": "full (diff)"}.get(module.algo, module.algo)
        return f"cannot load {kind} modules (ValueError: keys not renamed)"
    if "lora_mid.weight" in module.tensors:
        return "cannot load Tucker lora_mid tensors (ValueError: keys not renamed)"
    return None


@dataclass(frozen=True)
class Loader:
    label: str
    loads: Callable[[LoraModule], str | None]  # None, or why the loader refuses the module
    dora: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # W' at strength 1
    dora_wrong: str  # what it does differently, said when its DoRA result differs from LyCORIS'


LOADERS: Registry[Loader] = Registry("loader")
LOADERS.register("comfyui", Loader("ComfyUI", _loads_everything, comfyui_dora,
                                   "divides an output-axis dora_scale by the norm of the base weight W "
                                   "instead of W + ΔW"))
LOADERS.register("forge", Loader("Forge", _loads_everything, comfyui_dora,
                                 "divides an output-axis dora_scale by the norm of the base weight W "
                                 "instead of W + ΔW (ComfyUI's rule)"))
LOADERS.register("a1111", Loader("A1111", _loads_everything, a1111_dora,
                                 "normalises every dora_scale per input column, so an output-axis "
                                 "magnitude is broadcast into a wrong matrix"))
LOADERS.register("diffusers", Loader("diffusers", _diffusers_loads, diffusers_dora,
                                     "drops dora_scale with a warning (the magnitude is lost)"))

# what `kiln lora convert --target` aims at: every loader named must apply the file exactly
TARGETS: dict[str, tuple[str, ...]] = {"comfyui": ("comfyui",), "a1111": ("a1111", "forge"),
                                       "diffusers": ("diffusers",)}


@dataclass
class Verdict:
    exact: bool
    reason: str = ""
    error: float | None = None  # relative error of the loader's W' against LyCORIS', when measured


def probe_weight(shape: tuple[int, ...], m: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A stand-in base weight for a DoRA module when the real one is not at hand: random
    directions with the norms the magnitude was initialised from (m starts as ‖W‖ on its axis),
    so ΔW is in proportion to W as in a real model."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(*shape, generator=g)
    axis = dora_axis(m, shape)
    norm = _row_norm(w) if axis == "out" else _col_norm(w)
    return w / norm * m.to(torch.float32).abs().reshape(norm.shape)


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    n = float(b.double().norm())
    d = float((a.double() - b.double()).norm())
    return d / n if n else (0.0 if d == 0 else float("inf"))


def module_verdict(loader: Loader, module: LoraModule, delta: torch.Tensor,
                   base_w: torch.Tensor | None = None) -> Verdict:
    """Does `loader` apply `module` (its ΔW given, shaped like the target) as LyCORIS does?
    DoRA is checked numerically on `base_w`, or on a probe weight without it."""
    refused = loader.loads(module)
    if refused:
        return Verdict(False, refused)
    m = module.dora_scale
    if m is None:
        return Verdict(True)
    m = m.to(torch.float32)
    try:
        w = base_w.to(torch.float32).reshape(delta.shape) if base_w is not None else probe_weight(tuple(delta.shape), m)
        want = lycoris_dora(w, delta, m) - w
    except KilnError as e:
        return Verdict(False, f"its dora_scale cannot be read: {e}")
    try:
        got = loader.dora(w, delta, m)
        if tuple(got.shape) != tuple(w.shape):
            raise RuntimeError(f"result has shape {list(got.shape)}")
    except RuntimeError as e:
        return Verdict(False, f"fails on this dora_scale shape {list(m.shape)} ({e})")
    err = rel_diff(got - w, want)
    if err <= EXACT_RTOL:
        return Verdict(True, error=err)
    return Verdict(False, loader.dora_wrong, err)
