"""Optimizers: a registry of small records, plus kohya-style argument strings.

Each record says how to build the optimizer, which arguments it gets by default, what it is
good for, and whether it needs CUDA. `kiln train --list-optimizers` and the tests iterate over
the registry; an unknown name may be a dotted class path (kohya's `--optimizer_type mod.Class`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

from lorakiln.config.optimizer_args import BadOptimizerArgs
from lorakiln.config.optimizer_args import parse_optimizer_args as _parse
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
        raise MissingPackage(f"optimizer {optimizer} needs the `{package}` package: pip install {package}") from None


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


def parse_optimizer_args(args: str | list[str] | dict | None) -> dict[str, Any]:
    """kohya's forms (config/optimizer_args.py); a malformed value is a KilnError naming the key."""
    try:
        return _parse(args)
    except BadOptimizerArgs as e:
        raise KilnError(str(e)) from None


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
    except (TypeError, ValueError) as e:
        raise KilnError(f"optimizer {spec.name}: bad optimizer_args {args}: {e}") from None


class MissingPackage(KilnError):
    """The optimizer's package is not installed here (a dry run says so, training stops)."""


def check_optimizer(name: str, lr: float, args: dict[str, Any]) -> str | None:
    """Build the optimizer on a dummy parameter and take one step, so unknown argument names and
    bad values fail before any model loads; returns a note when it cannot be checked here."""
    spec = find_optimizer(name)
    if spec.needs_cuda and not torch.cuda.is_available():
        return f"optimizer {spec.name} needs CUDA: its optimizer_args are checked when training starts"
    p = torch.nn.Parameter(torch.zeros(4))
    try:
        opt = build_optimizer(name, [{"params": [p], "lr": lr}], lr, args)
    except MissingPackage as e:
        return str(e)
    p.grad = torch.full_like(p, 0.1)
    try:
        opt.step()
    except (TypeError, ValueError, RuntimeError) as e:
        raise KilnError(f"optimizer {spec.name}: bad optimizer_args {args}: {e}") from None
    return None


def describe(name: str, args: dict[str, Any]) -> str:
    """kohya's ss_optimizer form: "module.Class(key=value,...)"."""
    spec = find_optimizer(name)
    shown = ",".join(f"{k}={v}" for k, v in {**spec.defaults, **args}.items())
    return f"{spec.name}({shown})" if shown else spec.name
