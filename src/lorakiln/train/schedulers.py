"""Learning-rate schedules: a registry of pure step -> multiplier functions.

Every schedule shares the same warmup (linear from 0), a floor (minimum LR), and works per
parameter group through torch's LambdaLR, so U-Net and text-encoder LRs keep their ratio.
pytorch_optimizer's REXScheduler sets one LR for all groups and has no warmup, so REX is the
formula here (Chen et al. 2022, "REX: Revisiting Budgeted Training").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from lorakiln.core.registry import Registry


@dataclass(frozen=True)
class Shape:
    """Options of the restarting and polynomial schedules."""

    cycles: int = 1
    cycle_decay: float = 1.0
    power: float = 1.0


@dataclass(frozen=True)
class SchedulerSpec:
    name: str
    curve: Callable[[float, Shape], float]  # progress in [0, 1] -> multiplier in [0, 1]
    notes: str = ""
    decays: bool = True  # False for constant schedules (the floor does not apply)


SCHEDULERS: Registry[SchedulerSpec] = Registry("lr scheduler")


def _cycle(p: float, s: Shape) -> tuple[int, float]:
    """(cycle index, progress inside the cycle) for restarting schedules."""
    if p >= 1.0:
        return s.cycles - 1, 1.0
    k = int(p * s.cycles)
    return k, p * s.cycles - k


def _cosine(p: float, s: Shape) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * p))


def _cosine_restarts(p: float, s: Shape) -> float:
    k, q = _cycle(p, s)
    return (s.cycle_decay ** k) * 0.5 * (1.0 + math.cos(math.pi * q))


def _rex(p: float, s: Shape) -> float:
    k, q = _cycle(p, s)
    return (s.cycle_decay ** k) * (1.0 - q) / (1.0 - q / 2.0)


for spec in (
    SchedulerSpec("constant", lambda p, s: 1.0, "The same LR throughout (warmup is ignored).", decays=False),
    SchedulerSpec("constant_with_warmup", lambda p, s: 1.0, "Linear warmup, then constant (Prodigy's usual pair).",
                  decays=False),
    SchedulerSpec("linear", lambda p, s: 1.0 - p, "Linear decay to the floor."),
    SchedulerSpec("cosine", _cosine, "Half a cosine from the peak to the floor."),
    SchedulerSpec("cosine_with_restarts", _cosine_restarts,
                  "lr_scheduler_num_cycles cosines; each peak times lr_scheduler_cycle_decay (0.9: Animagine 3.1)."),
    SchedulerSpec("polynomial", lambda p, s: (1.0 - p) ** s.power, "(1 - progress) ** lr_scheduler_power."),
    SchedulerSpec("rex", _rex, "REX: (1-p)/(1-p/2), stays high longer than linear; cycles and decay apply."),
):
    SCHEDULERS.register(spec.name, spec)


def warmup_steps(value: float, total_steps: int) -> int:
    """kohya's lr_warmup_steps: a count, or below 1 a fraction of all steps."""
    return int(round(value * total_steps)) if 0 < value < 1 else int(value)


def find_scheduler(name: str) -> SchedulerSpec:
    key = name.lower().replace("-", "_")
    return SCHEDULERS.get({"rexscheduler": "rex", "cosine_annealing": "cosine"}.get(key, key))


def multiplier(name: str, step: int, total_steps: int, warmup: int, shape: Shape, floor: float = 0.0) -> float:
    """LR multiplier at `step` (0-based); pure, so it can be tabulated and tested."""
    spec = find_scheduler(name)
    if spec.name != "constant" and warmup > 0 and step < warmup:
        return step / warmup
    if not spec.decays:
        return 1.0
    span = max(1, total_steps - warmup)
    p = min(1.0, max(0.0, (step - warmup) / span))
    return floor + (1.0 - floor) * spec.curve(p, shape)


def build_scheduler(optimizer: Optimizer, name: str, total_steps: int, cfg) -> LambdaLR:
    """LambdaLR with one multiplier function per param group (cfg: OptimizerConfig)."""
    warm = warmup_steps(cfg.lr_warmup_steps, total_steps)
    shape = Shape(cfg.lr_scheduler_num_cycles, cfg.lr_scheduler_cycle_decay, cfg.lr_scheduler_power)
    find_scheduler(name)  # unknown names fail here, before training starts
    fns = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        floor = cfg.lr_scheduler_min_lr_ratio
        if cfg.min_lr and base > 0:
            floor = max(floor, min(1.0, cfg.min_lr / base))
        fns.append(_bind(name, total_steps, warm, shape, floor))
    return LambdaLR(optimizer, fns)


def _bind(name: str, total: int, warm: int, shape: Shape, floor: float) -> Callable[[int], float]:
    return lambda step: multiplier(name, step, total, warm, shape, floor)
