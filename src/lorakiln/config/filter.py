"""[filter]: rules that drop images no training run should see. The order is fixed (see FILTER_ORDER)."""

from __future__ import annotations

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section

DEFAULT_EXCLUDE = [
    "comic", "2koma", "3koma", "4koma", "multiple_views", "speech_bubble", "text_focus",
    "character_sheet", "reference_sheet",
]


@section("filter")
class FilterConfig(SectionModel):
    disable: list[str] = Field(
        default_factory=list, description="Filters to skip by name (`kiln filter --list` shows them)."
    )
    min_short_side: int = Field(512, ge=0, le=100_000, description="Drop images whose shorter side is below this (0: off).")
    min_pixels: int = Field(0, ge=0, le=10**10, description="Drop images with fewer pixels than this, width x height (0: off).")
    max_aspect: float = Field(
        4.0,
        ge=0.0,
        le=100.0,
        description="Drop images whose long side / short side exceeds this: no training bucket takes "
        "them (kohya's SDXL buckets stop at 4:1). 0: off.",
    )
    animated_formats: list[str] = Field(
        default_factory=lambda: ["mp4", "webm", "zip", "swf", "avi", "mov", "mkv"],
        description="Formats always dropped as video/animation; gif, png (apng) and webp are dropped "
        "when they hold more than one frame.",
    )
    greyscale_max_colour: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="Greyscale when at most this fraction of the drawn (non-paper) pixels has any "
        "real colour (chroma > 24 of 255).",
    )
    mono_max_off_ramp: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="Tinted monochrome (sepia, blue-tone) when at most this fraction of drawn pixels "
        "differs in colour from the average colour of its brightness level...",
    )
    mono_max_hue_spread: float = Field(
        0.1, ge=0.0, le=1.0, description="...and the brightness levels' colours share one hue (1 - hue concentration)."
    )
    background: tuple[int, int, int] = Field(
        (255, 255, 255), description="Colour transparent pixels are composited on before colour statistics."
    )
    require_tags: list[str] = Field(
        default_factory=lambda: ["solo"],
        description="Tags an image must all have (booru, imported caption or tagger tags). "
        "Images with no tags at all are not judged by tag rules until they are tagged.",
    )
    exclude_tags: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUDE), description="Images with any of these tags are dropped."
    )
    workers: int = Field(2, ge=1, le=64, description="Threads decoding images.")
    max_per_subset: int | None = Field(
        None, ge=1, description="Keep at most this many images per subset: the best by score, then resolution."
    )

    @field_validator("max_aspect")
    @classmethod
    def _aspect(cls, v: float) -> float:
        if 0 < v < 1:
            raise ValueError(f"{v} is below 1: long side / short side is never below 1, so every image would be "
                             "dropped (0 turns the rule off)")
        return v

    @field_validator("background")
    @classmethod
    def _rgb(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(0 <= c <= 255 for c in v):
            raise ValueError(f"{list(v)}: give red, green, blue from 0 to 255")
        return v
