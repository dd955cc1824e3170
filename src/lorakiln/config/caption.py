"""The [caption] table: how captions are ordered and written, and what training keeps fixed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section

SourceTag = Literal["auto", "anime", "furry", "cartoon", "pony", "none"]


@section("caption")
class CaptionConfig(SectionModel):
    trigger: list[str] | None = Field(
        None, description="Trigger word(s) put first in every caption; default: [project].trigger."
    )
    class_tokens: list[str] = Field(
        default_factory=list, description="Class token(s) written right after the trigger word(s), e.g. ['1girl']."
    )
    keep_tokens: int = Field(
        0, ge=0, le=1000,
        description="Leading caption tags training keeps unshuffled; written by `kiln caption trigger` and `order`.",
    )
    order: str = Field(
        "confidence", description="Tag order style for `kiln caption order`: animagine, pony, confidence or e621."
    )
    underscores: bool = Field(
        False, description="Write tags with underscores (long_hair) instead of spaces (long hair)."
    )
    escape: bool = Field(
        True, description="Escape parentheses for A1111 prompt syntax: name_(series) -> name \\(series\\)."
    )
    separator: str = Field(", ", description="Text written between tags in caption files.")
    quality_tags: bool = Field(
        False, description="Animagine order: add a quality tag (masterpiece ... worst quality) from the score percentile."
    )
    rating_tags: bool = Field(
        False, description="Add rating tags from the post rating (Animagine: safe/sensitive/nsfw; Pony: rating_*; e621: safe/...)."
    )
    year_tags: bool = Field(
        False, description="Animagine order: add a year tag (newest ... oldest) from the post date."
    )
    aesthetic_tags: bool = Field(
        False, description="Animagine order: add an aesthetic tag from record.extra['aesthetic'] when present."
    )
    score_tags: bool = Field(
        True, description="Pony order: add score_9, score_8_up, ... from the score percentile within the dataset."
    )
    source_tag: SourceTag = Field(
        "auto", description="Pony order: source_* tag; auto = source_furry for e621/e926 posts, else source_anime."
    )
    category_order: list[str] = Field(
        default_factory=lambda: ["character", "species", "copyright", "artist", "rating", "general", "meta"],
        description="e621 order: tag categories in this order; tags of other categories follow the general ones.",
    )
    core_threshold: float = Field(
        0.35, gt=0, le=1,
        description="prune-core: a feature tag present in at least this share of images counts as a fixed feature.",
    )
    core_groups: list[str] | None = Field(
        None, description="prune-core: feature groups considered (default: all groups of the bundled list)."
    )
    overlap_exceptions: list[str] = Field(
        default_factory=list, description="overlap: tags never dropped in favour of a more specific tag."
    )

    @field_validator("trigger", "class_tokens", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",") if t.strip()]
        return v

    @field_validator("order")
    @classmethod
    def _known_order(cls, v: str) -> str:
        from lorakiln.captions.order import ORDER_STYLES

        if v not in ORDER_STYLES:
            raise ValueError(f"unknown order style {v!r}; known: {', '.join(ORDER_STYLES.names())}")
        return v
