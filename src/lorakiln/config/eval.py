"""[eval]: how `kiln sample`, `kiln grid` and `kiln eval` generate and measure.

    [eval]               generation defaults shared by sample / grid / eval
    [eval.probes]        the fixed probe set of `kiln eval`: which probes, how many seeds
    [eval.models]        the metric models: CCIP (character similarity) and the tagger
    [eval.recommend]     how the best checkpoint and weight are chosen

Sizes left unset use the base model's resolution (512 SD1.5, 1024 SDXL, 64 for the tiny demo
models), so the same defaults suit every family.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from lorakiln.config.sections import SectionModel, section


class ProbeConfig(SectionModel):
    probe_set: Literal["quick", "standard", "full"] = Field(
        "standard", description="Built-in probe set: quick (6 probes, for tiny models and smoke tests), "
        "standard (17: portraits, outfits, poses, views, expressions, backgrounds, no-trigger, unrelated "
        "prompts), full (27, adds more of each kind).")
    only: list[str] = Field(default_factory=list, description=(
        "Keep only these probe names or groups (e.g. [\"outfit\", \"portrait\"]); empty = the whole set."))
    extra: list[dict] = Field(default_factory=list, description=(
        "Your own probes: tables with name, group (fidelity, outfit, pose, view, expression, background, "
        "no_trigger, unrelated), prompt (use {trigger}; {character} for the dataset outfit's tags) and tags "
        "(the tags the tagger should find)."))
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1001, 2002], min_length=1, description=(
        "Seeds used for every probe, checkpoint and weight (and the base model), so comparisons are paired."))
    dataset_tags: int = Field(6, ge=0, le=20, description=(
        "How many of the dataset's most frequent non-core tags make up the training outfit ({character})."))


class ModelsConfig(SectionModel):
    embedder: Literal["auto", "ccip", "tagger", "descriptor"] = Field("auto", description=(
        "Character similarity: ccip (deepghs CCIP ONNX, the reference), tagger (the WD tagger's output "
        "vector), descriptor (colour + layout statistics, always available). auto = the first that loads."))
    ccip_model: str = Field("ccip-caformer-24-randaug-pruned", description=(
        "CCIP model: a name in deepghs/ccip_onnx, or a local folder with model_feat.onnx, "
        "model_metrics.onnx and metrics.json."))
    ccip_revision: str = Field("main", description="Hub revision of deepghs/ccip_onnx.")
    ccip_local: str | None = Field(None, description="Local folder holding the CCIP files (used instead of the hub).")
    ccip_threshold: float | None = Field(None, gt=0, description=(
        "Same-character threshold on the CCIP difference; unset = the model's metrics.json value."))
    tagger: str | None = Field(None, description=(
        "Tagger for adherence, view bias and outfit lock-in; unset = [tag].model (with [tag].local_models)."))
    tag_threshold: float = Field(0.35, ge=0, le=1, description="Tagger probability that counts a tag as present.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="onnxruntime device for the metric models.")


class RecommendConfig(SectionModel):
    fidelity_weight: float = Field(2.0, gt=0, le=100, description=(
        "beta of the F-beta combination of fidelity and flexibility (CyberHarem uses 3: fidelity counts "
        "3x; 1 weighs them equally)."))
    min_fidelity: float = Field(0.0, ge=0, le=2, description=(
        "Candidates below this normalised fidelity are not recommended (0 = no floor)."))


@section("eval")
class EvalConfig(SectionModel):
    """Settings for `kiln sample`, `kiln grid` and `kiln eval`."""

    base: str | None = Field(None, description="Base model to sample on; unset = the run's, else [project].base.")
    sampler: str = Field("dpmpp_2m_karras", description=(
        "Sampler: euler_a, euler, dpmpp_2m_karras, ddim, ... or A1111 names (\"DPM++ 2M Karras\"). "
        "A non-ancestral sampler keeps base-vs-LoRA comparisons paired step by step."))
    steps: int = Field(24, ge=1, le=1000, description="Sampling steps.")
    cfg: float = Field(7.0, ge=0, le=100, description="CFG scale.")
    width: int | None = Field(None, ge=8, le=16384, description="Image width; unset = the base model's resolution.")
    height: int | None = Field(None, ge=8, le=16384, description="Image height; unset = the base model's resolution.")
    clip_skip: int | None = Field(None, ge=1, le=12, description=(
        "Clip skip; unset = the LoRA's ss_clip_skip, else 1 (SDXL ignores it)."))
    prompt_prefix: str = Field("", description="Put before every eval prompt (e.g. quality tags).")
    prompt_suffix: str = Field("", description=(
        "Put after every eval prompt (e.g. Animagine's \"masterpiece, best quality, very aesthetic\")."))
    negative: str = Field(
        "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, cropped, worst quality, "
        "low quality, jpeg artifacts, signature, watermark, username, blurry",
        description="Negative prompt for eval and grids (kiln sample uses it when --negative is not given).")
    weights: list[Annotated[float, Field(ge=-10, le=10)]] = Field(
        default_factory=lambda: [0.6, 0.8, 1.0], min_length=1,
        description="LoRA weights `kiln eval` tries for every checkpoint.")
    checkpoints: str = Field("all", description=(
        "Checkpoints `kiln eval` measures: all, last, last:N, or epoch numbers (\"2,4,6\" or [2, 4, 6])."))
    max_checkpoints: int = Field(6, ge=1, description=(
        "At most this many checkpoints (evenly spread, the last always included) when checkpoints = all."))
    batch_size: int = Field(4, ge=1, le=64, description="Images per pipeline call.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device for sampling.")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description=(
        "Weights dtype: auto = fp16 on a GPU, fp32 on the CPU."))
    reference_dir: str | None = Field(None, description=(
        "Pictures of the character to compare with; unset = the run's training data, else dataset/."))
    max_reference: int = Field(48, ge=1, description="At most this many reference pictures (evenly spread).")
    probes: ProbeConfig = Field(default_factory=ProbeConfig, description="[eval.probes]: the probe set.")
    models: ModelsConfig = Field(default_factory=ModelsConfig, description="[eval.models]: metric models.")
    recommend: RecommendConfig = Field(default_factory=RecommendConfig, description="[eval.recommend]: the pick.")

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _checkpoints(cls, v):
        return ",".join(str(x) for x in v) if isinstance(v, (list, tuple)) else v

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: list[float]) -> list[float]:
        return sorted(dict.fromkeys(float(x) for x in v))
