"""Optimizers: a registry of small records, plus kohya-style argument strings.

Each record says how to build the optimizer, which arguments it gets by default, what it is
good for, and whether it needs CUDA. `kiln train --list-optimizers` and the tests iterate over
the registry; an unknown name may be a dotted class path (kohya's `--optimizer_type mod.Class`).
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    factory: Callable[..., torch.optim.Optimizer]  # (param_groups, lr=..., **args)
    defaults: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    needs_cuda: bool = False
    package: str | None = None  # the pip package that provides it, for the error message
    state_per_param: float = 2.0  # optimizer state tensors per parameter (for memory estimates)
    single_lr: bool = False  # all groups must share one LR (or use 0)


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _add(spec: OptimizerSpec) -> None:
    OPTIMIZERS.register(spec.name, spec)


def _import(module: str, name: str, package: str, optimizer: str):
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        raise KilnError(f"optimizer {optimizer} needs the `{package}` package: pip install {package}") from None


def _adamw8bit(params, **kw):
    if not torch.cuda.is_available():
        raise KilnError("optimizer AdamW8bit (bitsandbytes) needs a CUDA GPU; use AdamW on this machine")
    return _import("bitsandbytes.optim", "AdamW8bit", "bitsandbytes", "AdamW8bit")(params, **kw)


def _lion(params, **kw):
    return _import("pytorch_optimizer", "Lion", "pytorch-optimizer", "Lion")(params, **kw)


def _prodigy(params, **kw):
    return _import("prodigyopt", "Prodigy", "prodigyopt", "Prodigy")(params, **kw)


def _came(params, **kw):
    return _import("pytorch_optimizer", "CAME", "pytorch-optimizer", "CAME")(params, **kw)


def _adafactor(params, **kw):
    return _import("transformers.optimization", "Adafactor", "transformers", "Adafactor")(params, **kw)


_add(OptimizerSpec("AdamW", torch.optim.AdamW, {"weight_decay": 0.01},
                   notes="torch AdamW; the safe default everywhere."))
_add(OptimizerSpec("AdamW8bit", _adamw8bit, {"weight_decay": 0.01}, needs_cuda=True, package="bitsandbytes",
                   state_per_param=0.5, notes="bitsandbytes 8-bit AdamW: a quarter of AdamW's state memory; CUDA only."))
_add(OptimizerSpec("Lion", _lion, {"weight_decay": 0.0, "betas": (0.9, 0.99)}, package="pytorch-optimizer",
                   state_per_param=1.0, notes="Lion (Chen et al. 2023): use about 1/3 to 1/10 of AdamW's LR."))
_add(OptimizerSpec(
    "Prodigy", _prodigy,
    {"decouple": True, "weight_decay": 0.01, "betas": (0.9, 0.999), "d_coef": 2.0,
     "use_bias_correction": True, "safeguard_warmup": True},
    package="prodigyopt", state_per_param=4.0, single_lr=True,
    notes="Adapts its own step size: set every learning rate to 1.0 (defaults from seed 001)."))
_add(OptimizerSpec("CAME", _came, {"weight_decay": 0.04}, package="pytorch-optimizer", state_per_param=2.0,
                   notes="CAME (Luo et al. 2023), memory-light; the PDXL recipe pairs it with REX at 1e-4."))
_add(OptimizerSpec(
    "Adafactor", _adafactor,
    {"scale_parameter": False, "relative_step": False, "warmup_init": False},
    package="transformers", state_per_param=0.1,
    notes="transformers Adafactor with an explicit LR (relative_step off); factored, very little state."))


def find_optimizer(name: str) -> OptimizerSpec:
    """Registry name (any case), or a dotted class path such as pytorch_optimizer.CAME."""
    for key, spec in OPTIMIZERS.items():
        if key.lower() == name.lower():
            return spec
    if "." in name:
        module, _, cls = name.rpartition(".")
        factory = _import(module, cls, module.split(".")[0], name)
        return OptimizerSpec(name, factory, notes=f"imported from {module}")
    return OPTIMIZERS.get(name)  # raises with the list of known names


_KEY = re.compile(r"(?:^|[\s,;]+)([A-Za-z_][A-Za-z0-9_]*)\s*=")


def _value(text: str) -> Any:
    text = text.strip().strip(",; ").strip()
    if "," in text and not text.startswith(("[", "(")):
        text = f"[{text}]"
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        v = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text.strip("'\"")
    return tuple(v) if isinstance(v, list) else v


def parse_optimizer_args(args: str | list[str] | dict | None) -> dict[str, Any]:
    """kohya's forms: "weight_decay=0.1 betas=0.9,0.99", "weight_decay=0.1, betas=[0.9,0.99]",
    a list of "k=v" strings, or a dict. Lists become tuples (what torch optimizers expect)."""
    if not args:
        return {}
    if isinstance(args, dict):
        return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        out: dict[str, Any] = {}
        for a in args:
            out.update(parse_optimizer_args(str(a)))
        return out
    matches = list(_KEY.finditer(args))
    if not matches or args[: matches[0].start()].strip(" ,;"):
        raise KilnError(f"optimizer_args {args!r}: expected key=value pairs such as 'weight_decay=0.1 betas=0.9,0.99'")
    out = {}
    for m, nxt in zip(matches, [*matches[1:], None]):
        out[m.group(1)] = _value(args[m.end(): nxt.start() if nxt else len(args)])
    return out


def build_optimizer(name: str, param_groups: Iterable[dict], lr: float, args: dict[str, Any]) -> torch.optim.Optimizer:
    """Create the optimizer: registry defaults < user args; each group keeps its own lr."""
    spec = find_optimizer(name)
    kwargs = {**spec.defaults, **args}
    param_groups = list(param_groups)
    lrs = sorted({g.get("lr", lr) for g in param_groups} - {0.0})
    if spec.single_lr and len(lrs) > 1:
        raise KilnError(f"optimizer {spec.name} needs one learning rate for the U-Net and the text encoder "
                        f"(got {lrs}); set unet_lr and text_encoder_lr to the same value (e.g. 1.0) or unset them")
    try:
        return spec.factory(param_groups, lr=lr, **kwargs)
    except TypeError as e:
        raise KilnError(f"optimizer {spec.name}: bad optimizer_args {args}: {e}") from None


def describe(name: str, args: dict[str, Any]) -> str:
    """kohya's ss_optimizer form: "module.Class(key=value,...)"."""
    spec = find_optimizer(name)
    shown = ",".join(f"{k}={v}" for k, v in {**spec.defaults, **args}.items())
    return f"{spec.name}({shown})" if shown else spec.name
