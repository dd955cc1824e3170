"""The plan: repeats per subset, epochs, steps and learning rates, each number explained.

Pure: counts and settings in, a Plan out. The service decides what gets written where.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lorakiln.config.plan import PlanConfig
from lorakiln.core.errors import KilnError
from lorakiln.planning import lr as lrmod
from lorakiln.planning.explain import Step, pct
from lorakiln.planning.repeats import balance, images_per_epoch, scale_factor, t_arithmetic
from lorakiln.planning.schedules import SCHEDULES, auto_schedule
from lorakiln.planning.steps import steps_for
from lorakiln.planning.views import AIM, ViewCap, cap_weights, planned_share, view_subsets, weight_scale


@dataclass
class PlanInputs:
    counts: dict[str, int]  # kept images per subset
    arch: str  # "sd15" or "sdxl"
    batch_size: int = 1
    optimizer: str | None = None
    views: ViewCap | None = None  # back views per subset and doctor's limit on their share
    sources: dict[str, str] = field(default_factory=dict)  # [plan] field -> where its value came from

    def origin(self, key: str) -> str:
        """`[plan].epochs from preset tiny-sdxl`: the setting and the layer that set it."""
        where = self.sources.get(key)
        return f"[plan].{key} from {where}" if where else f"[plan].{key}"


@dataclass
class Plan:
    schedule: str
    counts: dict[str, int]
    repeats: dict[str, int]
    images_per_epoch: int
    epochs: int
    batch_size: int
    steps_per_epoch: int
    steps: int
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    lines: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    back_share: float | None = None  # back views' share of an epoch (images x repeats), when known

    def summary(self) -> dict:
        return {"schedule": self.schedule, "counts": self.counts, "repeats": self.repeats,
                "images_per_epoch": self.images_per_epoch, "epochs": self.epochs, "batch_size": self.batch_size,
                "steps_per_epoch": self.steps_per_epoch, "steps": self.steps,
                "unet_lr": self.unet_lr, "text_encoder_lr": self.text_encoder_lr, "back_share": self.back_share}


def make_plan(inp: PlanInputs, cfg: PlanConfig) -> Plan:
    counts = {s: n for s, n in sorted(inp.counts.items()) if n > 0}
    notes = [f"subset {s!r} has no kept images: left out" for s, n in sorted(inp.counts.items()) if n <= 0]
    if not counts:
        raise KilnError("no kept images to plan for: fetch or import images first (`kiln status` shows the funnel)")
    if inp.batch_size < 1:
        raise KilnError(f"batch size must be at least 1 (got {inp.batch_size})")
    lines: list[Step] = []
    name, why = _pick_schedule(cfg, inp, len(counts))
    sched = SCHEDULES.get(name)
    lines.append(Step("schedule", name, sched.source, why))
    if sched.arch and sched.arch != inp.arch:
        notes.append(f"schedule {name} was made for {sched.arch} but the base family is {inp.arch}")
    notes += [f"[plan].weights names subset {s!r}, which has no kept images" for s in cfg.weights if s not in counts]

    weights, view_lines, view_notes = cap_weights(counts, cfg.weights, inp.views) if inp.views else (cfg.weights, [], [])
    notes += view_notes
    accept = None
    if view_lines:  # the whole point of those weights: rounding must not push the share back over the limit
        accept = lambda r: planned_share(counts, inp.views.back, r) <= inp.views.limit  # noqa: E731
    repeats, balance_lines = balance(counts, weights, accept)
    if len(counts) > 1:
        lines += view_lines + balance_lines
    k, k_lines = _factor(sched, cfg, counts, repeats, inp)
    lines += k_lines
    repeats = {s: r * k for s, r in repeats.items()}
    for s, r in repeats.items():
        lines.append(Step(f"repeats[{s}]", r, "final repeats", f"{r // k} x {k} = {r} ({counts[s]} images x {r} = {counts[s] * r})"))
    t = images_per_epoch(counts, repeats)
    lines.append(Step("images per epoch (T)", t, "sum of images x repeats (seed 001's T)", t_arithmetic(counts, repeats)))

    back_share = _back_share(inp.views, counts, repeats, cfg.weights, lines, notes)

    epochs, e_step = _epochs(sched, cfg, t, sum(counts.values()), inp)
    lines.append(e_step)
    per_epoch, total, s_text = steps_for(t, epochs, inp.batch_size)
    lines.append(Step("steps", total, "images x repeats x epochs / batch size", s_text))
    plan = Plan(name, counts, repeats, t, epochs, inp.batch_size, per_epoch, total, lines=lines, notes=notes,
                back_share=back_share)
    _learning_rates(plan, inp, cfg)
    return plan


def _back_share(cap: ViewCap | None, counts: dict[str, int], repeats: dict[str, int], user_weights: dict[str, float],
                lines: list[Step], notes: list[str]) -> float | None:
    """The back-view share `kiln doctor` checks, as planned; what to do when it is over the limit."""
    if cap is None or not any(cap.back.get(s) for s in counts):
        return None
    share = planned_share(counts, cap.back, repeats)
    seen = sum(counts[s] * r for s, r in repeats.items())
    parts = " + ".join(f"({cap.back[s]} x {r})" for s, r in repeats.items() if cap.back.get(s))
    lines.append(Step("back views", pct(share), "share of an epoch (images x repeats) that `kiln doctor` "
                      f"checks against [doctor].max_back_share {pct(cap.limit)}", f"{parts} / {seen}"))
    if share > cap.limit:
        notes.append(_over_limit(cap, counts, repeats, user_weights, share))
    return round(share, 4)


def _over_limit(cap: ViewCap, counts, repeats, user_weights, share: float) -> str:
    head = f"back views are {pct(share)} of an epoch, over doctor's limit of {pct(cap.limit)}: "
    views = view_subsets(counts, cap.back)
    weighted = [s for s in views if s in user_weights]
    seen = {s: float(counts[s] * r) for s, r in repeats.items()}
    backs = {s: float(cap.back.get(s, 0) * r) for s, r in repeats.items()}
    k = weight_scale(seen, backs, views, cap.limit * AIM) if views else None
    if weighted and k is not None:
        return head + "weight " + ", ".join(f"{s} {user_weights[s]:g} -> {user_weights[s] * k:.2g}" for s in weighted) + (
            " (`kiln plan --weight " + " --weight ".join(f"{s}={user_weights[s] * k:.2g}" for s in weighted)
            + "`, or leave it unweighted: the plan then keeps it under the limit)")
    return head + ("move them into a subset of their own (`kiln subset move --tag from_behind --to back`); "
                   "`kiln plan` then keeps that subset under the limit")


def _pick_schedule(cfg: PlanConfig, inp: PlanInputs, n_subsets: int) -> tuple[str, str]:
    if cfg.schedule != "auto":
        return cfg.schedule, f"{inp.origin('schedule')} = {cfg.schedule}"
    return auto_schedule(inp.arch, n_subsets)


def _factor(sched, cfg: PlanConfig, counts: dict[str, int], repeats: dict[str, int],
            inp: PlanInputs) -> tuple[int, list[Step]]:
    """Scale the balanced repeats so the images seen per epoch reach the schedule's target."""
    t_bal = images_per_epoch(counts, repeats)
    if sched.fixed_factor and not cfg.images_per_epoch:
        k = sched.fixed_factor
        return k, [Step("repeat factor", k, sched.source, f"{k} repeats for the largest subset: x {k}")]
    if cfg.images_per_epoch:
        target, rule, how = float(cfg.images_per_epoch), inp.origin("images_per_epoch"), str(cfg.images_per_epoch)
    else:
        target, how = sched.target(sum(counts.values()), cfg.lookup)
        rule, how = sched.source, f"{sum(counts.values())} images in all; {how}"
    k, text = scale_factor(t_bal, target)
    return k, [Step("target images per epoch", target, rule, how),
               Step("repeat factor", k, "scale the balanced repeats up to the target", text)]


def _epochs(sched, cfg: PlanConfig, t: int, images: int, inp: PlanInputs) -> tuple[int, Step]:
    if cfg.epochs:
        return cfg.epochs, Step("epochs", cfg.epochs, inp.origin("epochs"), str(cfg.epochs))
    e, text = sched.epochs(t, images, inp.batch_size, cfg.lookup)
    return e, Step("epochs", e, sched.source, text)


def _learning_rates(plan: Plan, inp: PlanInputs, cfg: PlanConfig) -> None:
    if cfg.strength is None:
        plan.notes.append("learning rates left as they are: give --strength S (seed 003: 1.0-1.2) to derive "
                          "them from L = S / (R x E x I)")
        return
    if lrmod.is_adaptive(inp.optimizer):
        plan.notes.append(f"{inp.optimizer} sets its own step size (its LR is a multiplier, ~1.0): "
                          "the strength formula is not applied")
        return
    plan.unet_lr, step = lrmod.lr_from_strength(cfg.strength, plan.counts, plan.repeats, plan.epochs, cfg.lr_digits)
    plan.lines.append(step)
    plan.text_encoder_lr, step = lrmod.te_lr(plan.unet_lr, cfg.te_ratio, cfg.lr_digits)
    plan.lines.append(replace(step, rule=f"{step.rule}; ratio {inp.origin('te_ratio')}") if "te_ratio" in inp.sources else step)
