"""[import]: how `kiln import` reads a folder the user already has."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section

IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".jfif", ".webp", ".gif", ".bmp", ".tif", ".tiff"]


@section("import")
class ImportConfig(SectionModel):
    mode: Literal["copy", "link"] = Field(
        "copy",
        description="copy: copy files into images/; link: hard link (symbolic link across file "
        "systems). The user's files are never moved or modified either way.",
    )
    caption_extensions: list[str] = Field(
        default_factory=lambda: [".txt", ".caption"],
        description="Sidecar caption files read as tags, first found wins (kohya uses .txt or .caption).",
    )
    image_extensions: list[str] = Field(
        default_factory=lambda: list(IMAGE_EXTENSIONS),
        description="File endings imported as images; other files are counted and skipped.",
    )
    kohya_folders: bool = Field(
        True, description="Read `N_name` folders as subset `name` with N repeats (kohya's convention)."
    )
    default_subset: str = Field("main", description="Subset for images outside any `N_name` folder.")
    verify: bool = Field(
        True,
        description="Decode every image fully at import so truncated or corrupt files are marked "
        "as errors now rather than during training (slower on large folders).",
    )
    workers: int = Field(2, ge=1, le=64, description="Threads decoding images.")

    @field_validator("caption_extensions", "image_extensions")
    @classmethod
    def _dotted(cls, v: list[str]) -> list[str]:
        return [e.lower() if e.startswith(".") else f".{e.lower()}" for e in v]
