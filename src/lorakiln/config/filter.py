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
    identity: bool = Field(
        False, description="Drop pictures that do not show the main character, judged by CCIP features "
        "(`kiln filter --identity`); the model is [filter] ccip_local, else [eval.models] ccip_local/ccip_model."
    )
    identity_threshold: float | None = Field(
        None, gt=0, le=2, description="Largest CCIP difference from the main character that is kept; unset = "
        "[eval.models] ccip_threshold, else the model's metrics.json value."
    )
    identity_min_pictures: int = Field(
        15, ge=2, le=100_000, description="Below this many pictures the identity filter drops nothing."
    )
    identity_min_share: float = Field(
        0.6, gt=0, le=1, description="The main character must make at least this share of the pictures; "
        "otherwise the identity filter warns and drops nothing."
    )
    ccip_local: str | None = Field(
        None, description="Folder with the CCIP files (model_feat.onnx, model_metrics.onnx, metrics.json) "
        "for the identity filter; unset = the model [eval.models] names."
    )
    identity_batch: int = Field(32, ge=1, le=1024, description="Pictures per CCIP feature batch.")

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
