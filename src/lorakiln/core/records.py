"""The typed manifest record: one per image, JSON-safe, no binary data."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Status(str, Enum):
    kept = "kept"
    dropped = "dropped"  # by a stage, with a reason; restorable
    error = "error"  # could not be fetched or decoded; reason says why


class TaggerScores(BaseModel):
    """Raw tagger output kept per image so thresholds can change without rerunning the model."""

    model_config = ConfigDict(extra="forbid")

    model: str
    rating: dict[str, float] = Field(default_factory=dict)
    general: dict[str, float] = Field(default_factory=dict)
    character: dict[str, float] = Field(default_factory=dict)


class ImageRecord(BaseModel):
    """Everything known about one image. Stages add to it; nothing is removed silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(description="Stable id: '<site>-<post id>' or 'local-<sha256 prefix>'.")
    source: str = Field(description="Site name (danbooru, gelbooru, e621, ...) or 'local'.")
    post_id: str | None = None
    post_url: str | None = None
    file_url: str | None = None
    file: str | None = Field(None, description="Path of the image relative to the project root.")
    original: str | None = Field(None, description="Original file kept when the image was resized.")
    md5: str | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    rating: str | None = None
    score: int | None = None
    created_at: str | None = None
    tags: dict[str, list[str]] = Field(
        default_factory=dict, description="Booru/imported tags by category (general, character, ...)."
    )
    status: Status = Status.kept
    reason: str | None = Field(None, description="Why the image was dropped or failed.")
    duplicate_of: str | None = Field(None, description="For duplicates: the id kept instead.")
    subset: str = "main"
    parent: str | None = Field(None, description="For crops: the id of the source image.")
    phash: str | None = None
    tagger: TaggerScores | None = None
    caption: list[str] | None = Field(None, description="Current caption tags, in order.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Stage-specific JSON data.")

    @property
    def kept(self) -> bool:
        return self.status == Status.kept

    def drop(self, reason: str, duplicate_of: str | None = None) -> None:
        self.status = Status.dropped
        self.reason = reason
        self.duplicate_of = duplicate_of

    def restore(self) -> None:
        self.status = Status.kept
        self.reason = None
        self.duplicate_of = None

    def fail(self, reason: str) -> None:
        self.status = Status.error
        self.reason = reason

    def all_tags(self) -> list[str]:
        """Booru tags of every category, in category order, without repeats."""
        seen: dict[str, None] = {}
        for tags in self.tags.values():
            for t in tags:
                seen.setdefault(t, None)
        return list(seen)
