"""[tag]: which tagger runs, how its scores become tags, and how they merge with booru tags."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from lorakiln.config.sections import SectionModel, section

THRESHOLD_NAMES = ("balanced",)
Threshold = Union[float, str]


@section("tag")
class TagConfig(SectionModel):
    model: str = Field(
        "wd-swinv2-v3",
        description="Tagger: a registered name (`kiln tag --list-models`), a hub repo id, "
        "or a local folder holding model.onnx + selected_tags.csv (tags-selected.csv for e621).",
    )
    revision: str | None = Field(
        None, description="Hub revision (commit id, tag or branch) overriding the registered one."
    )
    local_models: dict[str, str] = Field(
        default_factory=dict,
        description="Registered tagger name -> local folder with its files, used instead of the hub.",
    )
    cache_dir: str | None = Field(
        None, description="Hugging Face cache folder for downloaded taggers (default: the HF cache)."
    )
    threshold: Threshold = Field(
        0.35,
        description="General-tag threshold: a number in [0, 1], or 'balanced' for the model's "
        "published precision=recall threshold.",
    )
    character_threshold: float = Field(0.85, ge=0.0, le=1.0, description="Character-tag threshold.")
    mcut: bool = Field(False, description="Choose the general threshold per image by MCut (largest score gap).")
    character_mcut: bool = Field(False, description="Choose the character threshold per image by MCut.")
    character_mcut_floor: float = Field(
        0.15, ge=0.0, le=1.0, description="Lowest threshold character MCut may pick."
    )
    score_floor: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Scores below this are not stored in the manifest (keeps it small); "
        "thresholds must not be lower. Changing it needs `kiln tag --force`.",
    )
    merge: Literal["union", "booru", "tagger"] = Field(
        "union", description="How booru tags and tagger tags combine: union, booru only, tagger only."
    )
    drop_categories: list[str] = Field(
        default_factory=lambda: ["rating", "invalid"],
        description="Tag categories (booru or tagger) never used for captions: rating pseudo-tags, "
        "e621 invalid tags. Add e.g. 'artist' or 'meta' to drop those too.",
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Images per model call.")
    workers: int = Field(4, ge=1, le=64, description="Threads decoding images ahead of the model.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="onnxruntime device: auto uses CUDA when onnxruntime-gpu has it."
    )

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v):
        if isinstance(v, str):
            name = v.strip().lower()
            if name in THRESHOLD_NAMES:
                return name
            try:
                v = float(name)
            except ValueError:
                raise ValueError(f"give a number in [0, 1] or one of: {', '.join(THRESHOLD_NAMES)}") from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise ValueError(f"give a number in [0, 1] or one of: {', '.join(THRESHOLD_NAMES)}")
        return float(v)

    @model_validator(mode="after")
    def _above_floor(self):
        for name in ("threshold", "character_threshold"):
            v = getattr(self, name)
            if isinstance(v, float) and v < self.score_floor:
                raise ValueError(
                    f"{name} {v} is below score_floor {self.score_floor}: scores under the floor are not stored"
                )
        return self
