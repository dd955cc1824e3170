"""The [export] table: the kohya training view dataset/<repeats>_<subset>/ written by `kiln export`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section

MAX_REPEATS = 10_000  # images x repeats per epoch beyond this is a typo, not a plan


@section("export")
class ExportConfig(SectionModel):
    repeats: dict[str, Annotated[int, Field(ge=1, le=MAX_REPEATS)]] = Field(
        default_factory=dict,
        description="Repeats per subset, e.g. {main = 10, summer = 3}; `kiln plan` writes these.",
    )
    default_repeats: int = Field(
        1, ge=1, le=MAX_REPEATS, description="Repeats of a subset not listed in `repeats` (kohya's default is 1)."
    )
    caption_extension: str = Field(
        ".txt", description="Caption file extension beside each image (.txt or kohya's .caption)."
    )
    link: Literal["hardlink", "copy"] = Field(
        "hardlink",
        description="hardlink (no extra disk; falls back to copy across drives) or copy. Images are never modified.",
    )

    @field_validator("caption_extension")
    @classmethod
    def _dot(cls, v: str) -> str:
        v = v.strip()
        if not v or "/" in v or "\\" in v:
            raise ValueError("give an extension such as .txt or .caption")
        return v if v.startswith(".") else "." + v

    def repeats_for(self, subset: str) -> int:
        return self.repeats.get(subset, self.default_repeats)
