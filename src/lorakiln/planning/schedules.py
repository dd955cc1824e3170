"""Schedules: how many images an epoch should show and how many epochs, per base family.

Each is a small record in a registry (`kiln plan --list-schedules`); `auto` picks one from
the family and the number of subsets, the way the seeds do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lorakiln.core.registry import Registry
from lorakiln.planning.explain import round_half_up
from lorakiln.planning.steps import CONCEPTS, HOLOSTRAWBERRY, PDXL, Lookup, epochs_by_t, lookup, target_t

# target(images, how) -> (images seen per epoch wanted, arithmetic)
TargetFn = Callable[[int, Lookup], tuple[float, str]]
# epochs(t, images, batch, how) -> (epochs, arithmetic)
EpochsFn = Callable[[int, int, int, Lookup], tuple[int, str]]


@dataclass(frozen=True)
class Schedule:
    name: str
    arch: str | None  # "sd15", "sdxl", or None for any
    source: str
    description: str
    target: TargetFn
    epochs: EpochsFn
    fixed_factor: int | None = None  # multiply the balanced repeats by this instead of a target


SCHEDULES: Registry[Schedule] = Registry("plan schedule")


def _const(n: int, why: str) -> EpochsFn:
    return lambda t, images, batch, how: (n, why)


def _holo_epochs(t, images, batch, how):
    epochs = {r.epochs for r in HOLOSTRAWBERRY.rows}
    if len(epochs) == 1:
        e = epochs.pop()
        return e, f"{HOLOSTRAWBERRY.name}: every row trains {e} epochs"
    y, text = lookup([(r.images, r.epochs) for r in HOLOSTRAWBERRY.rows], images, how)
    return round_half_up(y), f"{HOLOSTRAWBERRY.name} by images: {text}"


def _xl_epochs(t, images, batch, how):
    per_epoch = -(-t // batch)
    e = min(10, max(1, round_half_up(2000 / per_epoch)))
    if e == 10:
        return 10, f"10 epochs (kohya-colab: 'around 10 epochs or around 2000 steps'; {per_epoch} steps per epoch x 10 <= 2000)"
    return e, f"about 2000 steps (kohya-colab): 2000 / {per_epoch} steps per epoch = {2000 / per_epoch:.2f} -> {e}"


def _target_100(t_min: int) -> TargetFn:
    def target(images, how):
        if images >= t_min:
            return float(images), f"{images} images >= {t_min}: 1 repeat"
        return float(t_min), f"images x repeats about {t_min}"
    return target


SCHEDULES.register("sd15-images", Schedule(
    "sd15-images", "sd15", "seed 001 (Holostrawberry's table)",
    "one folder on SD1.5/NovelAI: repeats and epochs from Holostrawberry's table (20x10, 100x3, 400x1, 1000x1; 10 epochs)",
    lambda images, how: _tagged(target_t(HOLOSTRAWBERRY, images, how), HOLOSTRAWBERRY.name + " (images x repeats by images)"),
    _holo_epochs,
))
SCHEDULES.register("sd15-concepts", Schedule(
    "sd15-concepts", "sd15", "seed 001 ('Multiple Concepts')",
    "several subsets on SD1.5: balance images x repeats, then epochs from T (200 T -> 17, 300 -> 12, 400 -> 10)",
    lambda images, how: _tagged(target_t(HOLOSTRAWBERRY, images, how), HOLOSTRAWBERRY.name + " (minimum images x repeats)"),
    lambda t, images, batch, how: _tagged(epochs_by_t(CONCEPTS, t, how), CONCEPTS.name),
))
SCHEDULES.register("pdxl", Schedule(
    "pdxl", "sdxl", "seed 001 (PDXL table)",
    "Pony Diffusion V6 XL: 2 repeats, epochs from the PDXL table (20 images -> 10 ... 600 -> 2)",
    lambda images, how: _tagged(target_t(PDXL, images, how), PDXL.name + " (images x repeats by images)"),
    lambda t, images, batch, how: _tagged(epochs_by_t(PDXL, t, how), PDXL.name + " (epochs by images x repeats)"),
))
SCHEDULES.register("xl-100", Schedule(
    "xl-100", "sdxl", "kohya-colab XL trainer (reference/trainers.md 5.3)",
    "SDXL (Animagine, Illustrious): images x repeats about 100 (1 repeat above 100 images), 10 epochs or about 2000 steps",
    _target_100(100), _xl_epochs,
))
SCHEDULES.register("prodigy", Schedule(
    "prodigy", None, "seed 001 ('Prodigy Optimizer')",
    "Prodigy on small datasets: images x repeats about 100 (20 images -> 5 repeats), 20 epochs",
    _target_100(100), _const(20, "seed 001: 'For epochs, just set it to 20' with Prodigy"),
))
SCHEDULES.register("fixed-10x10", Schedule(
    "fixed-10x10", None, "seed 003 ('Learning Rate')",
    "always 10 repeats and 10 epochs; pair it with --strength so the learning rate follows the dataset size",
    lambda images, how: (0.0, ""), _const(10, "seed 003: 'the same number of repeats (10) and epochs (10) each time'"),
    fixed_factor=10,
))


def _tagged(result: tuple, rule: str) -> tuple:
    value, text = result
    return value, f"{rule}: {text}"


def auto_schedule(arch: str, n_subsets: int) -> tuple[str, str]:
    """The schedule the seeds would use, and why."""
    if arch == "sdxl":
        return "xl-100", "auto: SDXL family -> xl-100 (Pony presets choose pdxl)"
    if n_subsets > 1:
        return "sd15-concepts", f"auto: SD1.5 with {n_subsets} subsets -> seed 001's 'Multiple Concepts' method"
    return "sd15-images", "auto: SD1.5 with one subset -> Holostrawberry's table"
