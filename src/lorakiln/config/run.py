"""The [run] table: what `kiln run` does between the stages' own settings."""

from __future__ import annotations

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section

CAPTION_STEPS = ("trigger", "remove", "prune-core", "overlap", "order")


@section("run")
class RunConfig(SectionModel):
    import_folders: list[str] = Field(
        default_factory=list,
        description="Folders of images (with .txt captions or N_name subfolders) imported before dedupe; "
        "relative paths are relative to the project folder.",
    )
    skip: list[str] = Field(
        default_factory=list,
        description="Stages `kiln run` leaves out, e.g. ['tag'] when you have no tagger model, or ['eval'].",
    )
    caption_steps: list[str] = Field(
        default_factory=lambda: list(CAPTION_STEPS),
        description="Caption operations applied in this order by the caption stage (each is recorded in "
        "the caption history and undoable): trigger, remove (the `remove_presets` lists), prune-core, "
        "overlap, order.",
    )
    remove_presets: list[str] = Field(
        default_factory=lambda: ["default"],
        description="Blacklist presets the `remove` caption step applies (see `kiln caption remove --help`).",
    )

    @field_validator("caption_steps")
    @classmethod
    def _known_steps(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in CAPTION_STEPS]
        if bad:
            raise ValueError(f"unknown caption step(s) {bad}; known: {', '.join(CAPTION_STEPS)}")
        return v
