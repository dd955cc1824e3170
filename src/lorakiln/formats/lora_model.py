"""A LoRA state dict as modules: algorithm, rank, alpha, DoRA scale, and each module's ΔW.

Key = "<kohya module name>.<suffix>". The suffix families (reference/eval-merge-formats.md §3.1,
§2.4; the math re-stated from LyCORIS' functional/ sources):

- lora / locon: lora_down [r, in(, k, k)], lora_up [out, r(, 1, 1)], optional Tucker lora_mid
  [r, r, k, k]; ΔW = alpha/r · up ∘ (mid ∘) down.
- loha: hada_w1_a/b, hada_w2_a/b (+ Tucker hada_t1/t2); ΔW = alpha/r · (w1a@w1b) ⊙ (w2a@w2b).
- lokr: lokr_w1 | lokr_w1_a/b, lokr_w2 | lokr_w2_a/b (+ lokr_t2); ΔW = kron(w1, w2), times
  alpha/r only when a factored half exists (r = the factored half's inner size), else 1.
- full: diff (ΔW itself), diff_b (bias change).
- dora_scale (any of the above): W' = m · (W + ΔW) / ‖W + ΔW‖ — needs the base weight; see
  `apply_dora` for the axis. `delta_weight` never applies it; callers with the base do.

A missing alpha means scale 1 (alpha = rank), as kohya and ComfyUI read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry


@dataclass
class LoraModule:
    name: str
    algo: str
    tensors: dict[str, torch.Tensor]  # suffix -> tensor (alpha and dora_scale excluded)
    alpha: float | None = None
    dora_scale: torch.Tensor | None = None

    @property
    def rank(self) -> int | None:
        return ALGOS.get(self.algo).rank(self.tensors)

    @property
    def scale(self) -> float:
        """The factor ΔW carries on top of the raw product (alpha / rank where it applies)."""
        return ALGOS.get(self.algo).scale(self.tensors, self.alpha)

    @property
    def shape(self) -> tuple[int, ...]:
        """Target weight shape as far as the keys tell; a LoHa/LoKr conv may come out flattened
        (out, in·k·k) — `conv_shape` or a base weight restores it."""
        return ALGOS.get(self.algo).shape(self.tensors)

    @property
    def is_conv(self) -> bool:
        return len(self.shape) == 4


@dataclass
class LoraModel:
    modules: dict[str, LoraModule]
    ignored: list[str] = field(default_factory=list)  # keys of no known module kind

    def algos(self) -> set[str]:
        return {m.algo for m in self.modules.values()}

    def has_dora(self) -> bool:
        return any(m.dora_scale is not None for m in self.modules.values())


@dataclass(frozen=True)
class Algo:
    """One adapter kind: which suffix marks it, its rank, scale, shape and ΔW."""

    marker: tuple[str, ...]  # any of these suffixes identifies the algorithm
    suffixes: frozenset[str]
    rank: Callable[[dict], int | None]
    scale: Callable[[dict, float | None], float]
    shape: Callable[[dict], tuple[int, ...]]
    delta: Callable[[dict], torch.Tensor]  # raw ΔW before `scale`


ALGOS: Registry[Algo] = Registry("LoRA algorithm")


def _alpha_over_rank(rank: int | None, alpha: float | None) -> float:
    return 1.0 if alpha is None or not rank else alpha / rank


def _f(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float32)


# -- lora / locon ------------------------------------------------------------------
def _lora_shape(t: dict) -> tuple[int, ...]:
    up, down, mid = t["lora_up.weight"], t["lora_down.weight"], t.get("lora_mid.weight")
    k = tuple((mid if mid is not None else down).shape[2:])
    return (up.shape[0], down.shape[1], *k)


def _lora_delta(t: dict) -> torch.Tensor:
    up, down, mid = _f(t["lora_up.weight"]), _f(t["lora_down.weight"]), t.get("lora_mid.weight")
    up2, down2 = up.reshape(up.shape[0], -1), down.reshape(down.shape[0], -1)
    if mid is None:
        return (up2 @ down2).reshape(_lora_shape(t))
    return torch.einsum("ij...,oi,jn->on...", _f(mid), up2, down2)


ALGOS.register("lora", Algo(
    marker=("lora_down.weight",),
    suffixes=frozenset({"lora_down.weight", "lora_up.weight", "lora_mid.weight"}),
    rank=lambda t: int(t["lora_down.weight"].shape[0]),
    scale=lambda t, a: _alpha_over_rank(int(t["lora_down.weight"].shape[0]), a),
    shape=_lora_shape,
    delta=_lora_delta,
))


# -- loha ----------------------------------------------------------------------------
def _hada_half(t: dict, i: int) -> torch.Tensor:
    a, b, tk = _f(t[f"hada_w{i}_a"]), _f(t[f"hada_w{i}_b"]), t.get(f"hada_t{i}")
    if tk is None:
        return a @ b
    return torch.einsum("ij...,jr,ip->pr...", _f(tk), b, a)  # Tucker: a [r, out], b [r, in]


def _loha_shape(t: dict) -> tuple[int, ...]:
    if "hada_t1" in t:
        return (t["hada_w1_a"].shape[1], t["hada_w1_b"].shape[1], *t["hada_t1"].shape[2:])
    return (t["hada_w1_a"].shape[0], t["hada_w1_b"].shape[1])


ALGOS.register("loha", Algo(
    marker=("hada_w1_a",),
    suffixes=frozenset({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2"}),
    rank=lambda t: int(t["hada_w1_b"].shape[0]),
    scale=lambda t, a: _alpha_over_rank(int(t["hada_w1_b"].shape[0]), a),
    shape=_loha_shape,
    delta=lambda t: _hada_half(t, 1) * _hada_half(t, 2),
))


# -- lokr -----------------------------------------------------------------------------
def _lokr_w1(t: dict) -> torch.Tensor:
    return _f(t["lokr_w1"]) if "lokr_w1" in t else _f(t["lokr_w1_a"]) @ _f(t["lokr_w1_b"])


def _lokr_w2(t: dict) -> torch.Tensor:
    if "lokr_w2" in t:
        return _f(t["lokr_w2"])
    a, b = _f(t["lokr_w2_a"]), _f(t["lokr_w2_b"])
    if "lokr_t2" in t:  # Tucker: a [r, out_k], b [r, in_k]
        return torch.einsum("ij...,ip,jr->pr...", _f(t["lokr_t2"]), a, b).contiguous()
    return (a @ b.reshape(b.shape[0], -1)).reshape(a.shape[0], *b.shape[1:])


def _lokr_delta(t: dict) -> torch.Tensor:
    w1, w2 = _lokr_w1(t), _lokr_w2(t)
    w1 = w1.reshape(*w1.shape, *([1] * (w2.dim() - 2)))  # kron over out/in only, kernel from w2
    return torch.kron(w1.contiguous(), w2.contiguous())


def _lokr_rank(t: dict) -> int | None:
    if "lokr_w1_b" in t:
        return int(t["lokr_w1_b"].shape[0])
    if "lokr_w2_b" in t:
        return int(t["lokr_w2_b"].shape[0])
    return None


def _lokr_shape(t: dict) -> tuple[int, ...]:
    w1 = t["lokr_w1"].shape if "lokr_w1" in t else (t["lokr_w1_a"].shape[0], t["lokr_w1_b"].shape[1])
    if "lokr_w2" in t:
        w2 = tuple(t["lokr_w2"].shape)
    elif "lokr_t2" in t:
        w2 = (t["lokr_w2_a"].shape[1], t["lokr_w2_b"].shape[1], *t["lokr_t2"].shape[2:])
    else:
        w2 = (t["lokr_w2_a"].shape[0], *t["lokr_w2_b"].shape[1:])
    return (w1[0] * w2[0], w1[1] * w2[1], *w2[2:])


ALGOS.register("lokr", Algo(
    marker=("lokr_w1", "lokr_w1_a"),
    suffixes=frozenset({"lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2"}),
    rank=_lokr_rank,
    scale=lambda t, a: _alpha_over_rank(_lokr_rank(t), a),
    shape=_lokr_shape,
    delta=_lokr_delta,
))


# -- full ---------------------------------------------------------------------------------
ALGOS.register("full", Algo(
    marker=("diff",),
    suffixes=frozenset({"diff", "diff_b"}),
    rank=lambda t: None,
    scale=lambda t, a: 1.0,
    shape=lambda t: tuple(t["diff"].shape),
    delta=lambda t: _f(t["diff"]),
))


# -- parsing ----------------------------------------------------------------------------
def _module_algo(name: str, suffixes: set[str]) -> str | None:
    for algo_name, algo in ALGOS.items():
        if any(m in suffixes for m in algo.marker):
            return algo_name
    return None


def parse_lora(state_dict: Mapping[str, torch.Tensor], source: str = "LoRA") -> LoraModel:
    """Group keys into modules; keys of unknown kinds (embeddings, OFT, norms) go to `ignored`."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        name, _, suffix = key.partition(".")
        grouped.setdefault(name, {})[suffix] = value
    modules: dict[str, LoraModule] = {}
    ignored: list[str] = []
    for name, parts in grouped.items():
        algo_name = _module_algo(name, set(parts))
        if algo_name is None:
            ignored.extend(f"{name}.{s}" if s else name for s in parts)
            continue
        modules[name] = _make_module(source, name, algo_name, parts, ignored)
    return LoraModel(modules, sorted(ignored))


def _make_module(source: str, name: str, algo_name: str, parts: dict, ignored: list[str]) -> LoraModule:
    algo = ALGOS.get(algo_name)
    alpha = parts.pop("alpha", None)
    dora = parts.pop("dora_scale", None)
    tensors = {s: t for s, t in parts.items() if s in algo.suffixes}
    ignored.extend(f"{name}.{s}" for s in parts if s not in algo.suffixes)
    try:
        algo.shape(tensors)
        if algo_name == "lora":
            _check_lora_ranks(tensors)
        alpha_v = None if alpha is None else float(alpha.float().reshape(-1)[0].item())
    except (KeyError, IndexError, RuntimeError, ValueError) as e:
        raise KilnError(f"{source}: module {name} ({algo_name}) is incomplete or malformed: {e}") from None
    return LoraModule(name, algo_name, tensors, alpha_v, dora)


def _check_lora_ranks(t: dict) -> None:
    up, down, mid = t["lora_up.weight"], t["lora_down.weight"], t.get("lora_mid.weight")
    r = up.shape[1]
    if r != down.shape[0] or (mid is not None and tuple(mid.shape[:2]) != (r, r)):
        raise ValueError(f"rank mismatch: up {list(up.shape)}, down {list(down.shape)}")


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


# -- ΔW -------------------------------------------------------------------------------------
def delta_weight(module: LoraModule, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """ΔW in float32 with the alpha/rank scale applied, shaped like the target weight
    (`shape` when given, e.g. from the base model, else `module.shape`). DoRA not applied."""
    try:
        d = ALGOS.get(module.algo).delta(module.tensors) * module.scale
    except RuntimeError as e:
        raise KilnError(f"module {module.name} ({module.algo}): factors do not fit together: {e}") from None
    target = tuple(shape) if shape is not None else module.shape
    if d.numel() != _prod(target):
        raise KilnError(f"module {module.name}: ΔW has {d.numel()} values, the target weight "
                        f"{list(target)} has {_prod(target)}")
    return d.reshape(target)


def bias_delta(module: LoraModule) -> torch.Tensor | None:
    b = module.tensors.get("diff_b")
    return None if b is None else _f(b)


def dora_axis(dora_scale: torch.Tensor, shape: tuple[int, ...]) -> str:
    """'out' (per output row: PEFT, LyCORIS ≥3.2 default) or 'in' (per input column: A1111,
    older LyCORIS), read from the stored magnitude's shape."""
    s = tuple(dora_scale.shape)
    if len(s) == 1 or (s[0] == shape[0] and all(x == 1 for x in s[1:])):
        return "out"
    if len(s) >= 2 and s[0] == 1 and s[1] == shape[1]:
        return "in"
    raise KilnError(f"dora_scale of shape {list(s)} fits neither axis of a {list(shape)} weight")


def _axis_norm(w: torch.Tensor, axis: str) -> torch.Tensor:
    if axis == "out":
        return w.reshape(w.shape[0], -1).norm(dim=1).reshape(w.shape[0], *([1] * (w.dim() - 1)))
    wt = w.transpose(0, 1)
    return wt.reshape(wt.shape[0], -1).norm(dim=1).reshape(1, w.shape[1], *([1] * (w.dim() - 2)))


def apply_dora(base_w: torch.Tensor, delta: torch.Tensor, dora_scale: torch.Tensor,
               axis: str | None = None) -> torch.Tensor:
    """The merged DoRA weight m · (W + ΔW) / ‖W + ΔW‖, in float32.

    The axis matters and files do not say it: LyCORIS ≥3.2 (wd_on_output=True) and PEFT store a
    per-output-row magnitude [out, 1, ...]; A1111 and older LyCORIS a per-input-column one
    [1, in, ...]. With `axis=None` the magnitude's shape decides; a square layer with a 1-d
    magnitude is read as 'out' (PEFT). Using the wrong axis silently changes the result, which is
    why UIs disagree on DoRA files (reference §2.4)."""
    w = _f(base_w) + delta.reshape(base_w.shape)
    axis = axis or dora_axis(dora_scale, tuple(base_w.shape))
    m = _f(dora_scale).reshape(_axis_norm(w, axis).shape)
    return w * (m / (_axis_norm(w, axis) + torch.finfo(torch.float32).eps))


# -- conv shapes that the keys flatten ------------------------------------------------------
_CONV3 = re.compile(r"(resnets_\d+_conv[12]|(down|up)samplers_0_conv|in_layers_2|out_layers_3|"
                    r"input_blocks_\d+_0_op|output_blocks_\d+_\d+_conv|conv_in|conv_out)$")
_CONV1 = re.compile(r"(conv_shortcut|skip_connection)$")
_SD15_PROJ = re.compile(r"^lora_unet_(down_blocks|mid_block|up_blocks)_.*_proj_(in|out)$")


def conv_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Restore the kernel of a conv module whose keys store it flattened (LoHa/LoKr without
    Tucker), from the kohya module name: SD U-Net resnet/sampler convs are 3×3, shortcuts and
    SD1.5 transformer projections 1×1. Other shapes are returned unchanged."""
    if len(shape) != 2:
        return tuple(shape)
    out, flat = shape
    if _CONV3.search(name) and flat % 9 == 0:
        return (out, flat // 9, 3, 3)
    if _CONV1.search(name) or _SD15_PROJ.search(name):
        return (out, flat, 1, 1)
    return tuple(shape)
