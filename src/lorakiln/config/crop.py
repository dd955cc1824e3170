"""[crop]: close-up crops (portrait, upper body, cowboy shot) of single-person pictures."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from lorakiln.config.sections import SectionModel, section

Framing = Literal["portrait", "upper_body", "cowboy_shot"]


@section("crop")
class CropConfig(SectionModel):
    enabled: bool = Field(False, description="Run the crop stage in `kiln run` (it needs the detector models; "
                          "`kiln crop` runs it by hand either way).")
    framings: list[Framing] = Field(["portrait", "upper_body", "cowboy_shot"],
                                    description="Close-ups derived from each kept single-person picture.")
    subset: str = Field("closeups", min_length=1, max_length=100,
                        description="Subset of the crops, so `kiln plan` can give them their own repeats.")
    min_side: int = Field(256, ge=16, le=8192, description="Smallest short side of a crop in pixels; smaller "
                          "crops are skipped (they would be upscaled far past what their bucket needs).")
    pad: float = Field(0.06, ge=0.0, le=1.0, description="Margin added on each side, as a share of the crop.")
    max_aspect: float = Field(2.0, ge=1.0, le=4.0, description="Crops are widened to at most this long:short ratio.")
    max_cover: float = Field(0.8, gt=0.0, le=1.0, description="A crop covering this share of its picture or more is "
                             "skipped: the picture already is that framing.")
    person_local: Optional[str] = Field(None, description="Folder of the person detector's model.onnx (else the hub).")
    head_local: Optional[str] = Field(None, description="Folder of the head detector's model.onnx (else the hub).")
    halfbody_local: Optional[str] = Field(None, description="Folder of the half-body detector's model.onnx; "
                                          "without one, upper-body crops are cut at 47 % of the person.")
    use_halfbody: bool = Field(True, description="Run the half-body detector for upper-body crops.")
