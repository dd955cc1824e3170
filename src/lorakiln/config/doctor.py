"""[doctor]: thresholds of the dataset checks run by `kiln doctor`."""

from __future__ import annotations

from pydantic import Field

from lorakiln.config.sections import SectionModel, section


@section("doctor")
class DoctorConfig(SectionModel):
    rules: list[str] | None = Field(None, description="Run only these rules (`kiln doctor --list-rules`); unset = all.")
    skip: list[str] = Field(default_factory=list, description="Rules never run.")
    max_back_share: float = Field(
        0.2, ge=0, le=1, description="views: largest share of images x repeats showing the character from "
        "behind (seed 000: back views with high repeats take over the LoRA).")
    toggle_share: float = Field(
        0.25, gt=0, lt=0.5, description="toggles: an outfit or accessory that should stay optional must be present "
        "in at least this share of images and absent in at least this share (seed 003: a quarter).")
    toggles: list[str] = Field(
        default_factory=list, description="toggles: tags you want to switch on and off by prompt (outfits, "
        "accessories, outfit trigger tags); checked both ways.")
    core_tags: list[str] = Field(
        default_factory=list, description="toggles/absorbed: outfit or feature tags meant to be always there "
        "(never reported).")
    min_headshot_share: float = Field(
        0.15, ge=0, le=1, description="headshots: smallest share of portrait / close-up / upper-body images "
        "(seed 000 iteration 1, seed 003 'Headshots').")
    max_artist_share: float = Field(
        0.4, gt=0, le=1, description="style: largest share of images by one artist before the LoRA learns that style.")
    max_style_share: float = Field(
        0.6, gt=0, le=1, description="style: largest share of images carrying one style tag (anime_screencap, 3d, ...).")
    min_area_ratio: float = Field(
        0.75, gt=0, le=1, description="resolution: an image whose pixel area is below this share of the training "
        "resolution squared gets upscaled by the trainer.")
    duplicate_distance: int | None = Field(
        None, ge=0, le=64, description="duplicates: pHash Hamming distance counted as a near-duplicate; unset = "
        "[dedupe].threshold when that section has one, else 8.")
    ignore_tags: list[str] = Field(
        default_factory=lambda: ["1girl", "1boy", "1other", "solo", "male_focus", "female_focus", "solo_focus"],
        description="absorbed: tags that may be in every image without a warning (counts and focus tags).")
    max_items: int = Field(10, ge=1, description="How many image ids a finding lists (`--all` lists every one).")
