"""[tag]: which tagger runs, how its scores become tags, and how they merge with booru tags."""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lorakiln.config.sections import SectionModel, section

THRESHOLD_NAMES = ("balanced",)
Threshold = Union[float, str]


def parse_threshold(v):
    """A number in [0, 1] (also given as text) or a threshold name such as 'balanced'."""
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


class AlsoTagger(BaseModel):
    """One extra tagger run after the main one; its tags join the main model's."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Tagger: registered name, hub repo id or local folder (like [tag] model).")
    threshold: Threshold | None = Field(
        None, description="General threshold for this model (number or 'balanced'); default: [tag] threshold."
    )
    character_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Character threshold for this model; default: [tag] character_threshold."
    )

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v):
        return None if v is None else parse_threshold(v)


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
    also: list[AlsoTagger] = Field(
        default_factory=list,
        description="Extra taggers run after `model`, each with its own thresholds, e.g. "
        "[{model = \"z3d-e621-convnext\", threshold = 0.7}]; their tags are added to the main model's.",
    )
    batch_size: int = Field(8, ge=1, le=1024, description="Images per model call.")
    workers: int = Field(4, ge=1, le=64, description="Threads decoding images ahead of the model.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="onnxruntime device: auto uses CUDA when onnxruntime-gpu has it."
    )

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v):
        return parse_threshold(v)

    @model_validator(mode="after")
    def _above_floor(self):
        for name in ("threshold", "character_threshold"):
            v = getattr(self, name)
            if isinstance(v, float) and v < self.score_floor:
                raise ValueError(
                    f"{name} {v} is below score_floor {self.score_floor}: scores under the floor are not stored"
                )
        for i, extra in enumerate(self.also):
            for name in ("threshold", "character_threshold"):
                v = getattr(extra, name)
                if isinstance(v, float) and v < self.score_floor:
                    raise ValueError(f"also[{i}] ({extra.model}) {name} {v} is below score_floor "
                                     f"{self.score_floor}: scores under the floor are not stored")
        return self

    def for_also(self, extra: AlsoTagger) -> "TagConfig":
        """This config with an extra tagger's own thresholds (unset ones fall back to ours)."""
        update = {k: getattr(extra, k) for k in ("threshold", "character_threshold") if getattr(extra, k) is not None}
        return self.model_copy(update={**update, "model": extra.model, "also": []})
