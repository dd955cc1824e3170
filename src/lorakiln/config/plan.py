"""[plan]: how `kiln plan` derives repeats, epochs and learning rate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section


@section("plan")
class PlanConfig(SectionModel):
    family: Literal["sd15", "sdxl"] | None = Field(
        None, description="Which tables to use (SD1.5 or SDXL); default: the family of the base model's preset.")
    schedule: str = Field(
        "auto", description="Repeats/epochs rule: auto, sd15-images, sd15-concepts, pdxl, xl-100, prodigy, "
        "fixed-10x10 (`kiln plan --list-schedules` explains each).")
    weights: dict[str, float] = Field(
        default_factory=dict, description="Relative weight per subset when balancing (default 1 = equal "
        "images x repeats); e.g. {back = 0.3} shows back views a third as often.")
    strength: float | None = Field(
        None, gt=0, le=10, description="Training strength S for seed 003's L = S / (R x E x I); 1.0 is nominally "
        "fully baked, 1.1-1.2 for characters the base model knows less. Unset: learning rates are left alone.")
    te_ratio: float = Field(
        0.5, ge=0, le=10, description="Text-encoder LR as a ratio of the U-Net LR (seed 003: 0.5-0.6; seed 001 SD1.5: 0.2).")
    epochs: int | None = Field(None, ge=1, le=100_000, description="Fix the number of epochs instead of taking it from the table.")
    images_per_epoch: int | None = Field(
        None, ge=1, description="Fix the target images x repeats per epoch (T) instead of taking it from the table.")
    lookup: Literal["interpolate", "nearest"] = Field(
        "interpolate", description="Between two table rows: interpolate linearly, or take the nearest row "
        "(what seed 001 does by hand).")
    lr_digits: int = Field(3, ge=1, le=17, description="Significant digits of the learning rates written.")

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, v: str) -> str:
        from lorakiln.planning.schedules import SCHEDULES

        if v != "auto" and v not in SCHEDULES:
            raise ValueError(f"unknown schedule {v!r}; known: auto, {', '.join(SCHEDULES.names())}")
        return v

    @field_validator("weights")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in v.items() if not w > 0]
        if bad:
            raise ValueError(f"weights must be positive (check {', '.join(bad)})")
        return v
