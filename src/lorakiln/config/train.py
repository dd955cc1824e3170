"""The [train] section: everything `kiln train` needs, with kohya's option names.

Field names follow kohya sd-scripts (and the kohya_ss GUI) wherever one exists, so a user can
copy a line from a kohya config and importers map keys one to one. The section is split into
sub-tables by concern; each part of the trainer receives only its own sub-table:

    [train]            epochs, batch size, precision, seed, base override ...
    [train.network]    network_dim, network_alpha, conv_dim, algo, dropouts ...
    [train.optimizer]  optimizer, optimizer_args, learning rates, lr_scheduler ...
    [train.loss]       loss_type, min_snr_gamma, noise_offset, timesteps, v-prediction ...
    [train.buckets]    resolution, min/max_bucket_reso, bucket_reso_steps, no-upscale ...
    [train.data]       folders, dataset TOML, and per-subset caption/augmentation defaults
    [train.cache]      latent and text-encoder output caching
    [train.save]       checkpoint and state saving cadence, rotation, precision
    [train.sample]     sample prompts during training
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, create_model, field_validator, model_serializer, model_validator

from lorakiln.config.sections import SectionModel, section

Precision = Literal["auto", "no", "fp16", "bf16"]
MAX_LR = 10.0  # Prodigy and D-Adaptation run at 1.0; nothing trains above this
MAX_SIDE = 8192  # pixels per side of a training resolution or bucket
MAX_REPEATS = 10_000
_RESOLUTION = re.compile(r"\s*(\d+)\s*(?:(?:[,xX\u00d7]|\s)\s*(\d+)\s*)?")


def parse_resolution(text: str) -> int | tuple[int, int]:
    """kohya's resolution text, all of it: '1024' (square), '1024,768', '1024x768' or '1024 768'.
    Anything else is a ValueError, never half read ('512,x')."""
    m = _RESOLUTION.fullmatch(text)
    if not m:
        raise ValueError(f"cannot read a resolution from {text!r}: give one number or two, "
                         "as '1024' or '1024,768'")
    return int(m.group(1)) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))


class NetworkConfig(SectionModel):
    algo: Literal["lora", "locon", "loha", "lokr"] = Field(
        "lora", description="Adapter type: lora (kohya networks.lora), locon (LoRA + conv layers), "
        "loha, lokr (LyCORIS). DoRA is `dora_wd = true` on top of lora/loha/lokr.")
    network_dim: int = Field(16, ge=1, le=100_000, description="Rank of the adapter (kohya --network_dim).")
    network_alpha: float = Field(8.0, gt=0, le=100_000, description="Scale alpha; the update is scaled by alpha/dim "
                                 "(kohya --network_alpha; 1 is kohya's default, dim/2 is common).")
    conv_dim: int | None = Field(None, ge=1, le=100_000, description="Rank for 3x3 conv layers (LoCon); unset = no conv adapters.")
    conv_alpha: float | None = Field(None, gt=0, le=100_000, description="Alpha for the conv adapters; unset = 1, as in kohya and LyCORIS.")
    dora_wd: bool = Field(False, description="DoRA: weight-decomposed adaptation (LyCORIS dora_wd).")
    network_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's hidden activations.")
    rank_dropout: float = Field(0.0, ge=0, lt=1, description="Drop whole ranks at random during training.")
    module_dropout: float = Field(0.0, ge=0, lt=1, description="Skip a whole adapter module at random during training.")
    network_args: dict[str, Any] = Field(default_factory=dict, description=(
        "Extra keyword arguments passed to the adapter (kohya --network_args, e.g. factor=8 for lokr)."))
    network_weights: str | None = Field(None, description=(
        "Continue training from this LoRA file (weights only; use --resume for a full restart)."))
    network_train_unet_only: bool = Field(False, description="Train only the U-Net; the text encoder(s) stay frozen.")
    stop_text_encoder_training: int = Field(0, ge=0, description=(
        "Stop training the text encoder(s) after this many steps (0 = never stop)."))


class OptimizerConfig(SectionModel):
    optimizer: str = Field("AdamW", description=(
        "Optimizer name from `kiln train --list-optimizers` (AdamW, AdamW8bit, Lion, Prodigy, CAME, Adafactor, ...) "
        "or a dotted class path such as pytorch_optimizer.CAME (kohya --optimizer_type)."))
    optimizer_args: str | list[str] | dict[str, Any] = Field("", description=(
        "Extra optimizer arguments, kohya style: \"weight_decay=0.1 betas=0.9,0.99\" or "
        "\"weight_decay=0.1, betas=[0.9,0.99]\", a list of such strings, or a TOML table."))
    learning_rate: float = Field(1e-4, gt=0, le=MAX_LR, description="Base learning rate (kohya --learning_rate).")
    unet_lr: float | None = Field(None, ge=0, le=MAX_LR, description="U-Net learning rate; unset = learning_rate.")
    text_encoder_lr: float | list[float] | None = Field(None, description=(
        "Text-encoder learning rate (one value, or one per text encoder for SDXL); unset = learning_rate; "
        "0 freezes the text encoder(s)."))
    lr_scheduler: str = Field("cosine", description="Scheduler from `kiln train --list-schedulers`.")
    lr_warmup_steps: float = Field(0.05, ge=0, description=(
        "Warmup: a step count (>= 1) or a fraction of all steps (< 1, e.g. 0.05 = 5%)."))
    lr_scheduler_num_cycles: int = Field(1, ge=1, le=10_000, description="Cycles (restarts) for cosine_with_restarts / rex.")
    lr_scheduler_cycle_decay: float = Field(1.0, gt=0, le=1, description=(
        "Peak multiplier per restart cycle (0.9 = each cycle peaks 10% lower, as Animagine 3.1 trained)."))
    lr_scheduler_power: float = Field(1.0, gt=0, le=100, description="Power of the polynomial scheduler.")
    lr_scheduler_min_lr_ratio: float = Field(0.0, ge=0, le=1, description=(
        "Floor of the decaying schedulers as a fraction of each group's learning rate."))
    min_lr: float | None = Field(None, ge=0, le=MAX_LR, description=(
        "Floor as an absolute learning rate (LoRA Easy Training Scripts' 'Minimum Learning Rate'); "
        "the higher of this and lr_scheduler_min_lr_ratio applies, never above a group's own LR."))
    max_grad_norm: float = Field(1.0, ge=0, description="Clip gradients to this norm (0 = no clipping).")

    @field_validator("optimizer_args")
    @classmethod
    def _args_parse(cls, v):
        from lorakiln.config.optimizer_args import parse_optimizer_args

        parse_optimizer_args(v)  # a malformed value is an error here, naming the file and key
        return v

    @field_validator("text_encoder_lr")
    @classmethod
    def _te_lr_range(cls, v):
        for lr in ([v] if isinstance(v, float) else v or []):
            if not 0 <= lr <= MAX_LR:
                raise ValueError(f"a learning rate of {lr} is outside 0 .. {MAX_LR} (0 freezes the text encoder)")
        return v

    @field_validator("lr_warmup_steps")
    @classmethod
    def _steps_are_whole(cls, v: float) -> float:
        if v >= 1 and v != int(v):
            raise ValueError("use a whole number of steps (>= 1) or a fraction below 1")
        return v


class LossConfig(SectionModel):
    loss_type: Literal["l2", "l1", "huber", "smooth_l1"] = Field("l2", description="Per-element loss.")
    huber_c: float = Field(0.1, gt=0, le=10, description="Huber threshold (its value at t=0 for the schedules).")
    huber_schedule: Literal["constant", "exponential", "snr"] = Field("snr", description=(
        "How the Huber threshold varies with the timestep (kohya --huber_schedule)."))
    huber_scale: float = Field(1.0, gt=0, le=100, description="Multiplier of the Huber threshold.")
    min_snr_gamma: float | None = Field(5.0, ge=0, le=1000, description=(
        "Min-SNR weighting gamma (Hang et al. 2023); 5 is the paper's value; 0 = off (as in kohya)."))
    debiased_estimation_loss: bool = Field(False, description="Weight the loss by 1/sqrt(SNR).")
    scale_v_pred_loss_like_noise_pred: bool = Field(False, description=(
        "For v-prediction: scale the loss by SNR/(SNR+1) so it behaves like epsilon loss."))
    noise_offset: float = Field(0.0, ge=0, le=1, description="Offset noise strength (0.0357 and 0.1 are common).")
    noise_offset_random_strength: bool = Field(False, description="Draw the offset strength uniformly in [0, noise_offset].")
    multires_noise_iterations: int = Field(0, ge=0, le=64, description="Pyramid (multi-resolution) noise levels; 6-10 typical.")
    multires_noise_discount: float = Field(0.3, ge=0, le=1, description="Weight decay per pyramid level.")
    v_parameterization: bool | None = Field(None, description=(
        "Train with v-prediction; unset = what the base model uses (e.g. NoobAI V-Pred)."))
    zero_terminal_snr: bool = Field(False, description="Rescale the noise schedule to zero terminal SNR (Lin et al. 2023).")
    min_timestep: int = Field(0, ge=0, le=1000, description="Smallest training timestep (inclusive).")
    max_timestep: int = Field(1000, ge=1, le=1000, description="Largest training timestep (exclusive).")
    prior_loss_weight: float = Field(1.0, ge=0, le=100, description="Loss weight of regularisation images.")

    @model_validator(mode="after")
    def _range(self) -> "LossConfig":
        if self.min_timestep >= self.max_timestep:
            raise ValueError(f"min_timestep ({self.min_timestep}) must be below max_timestep ({self.max_timestep})")
        return self


class BucketConfig(SectionModel):
    resolution: int | tuple[int, int] | None = Field(None, description=(
        "Training resolution: one number or [width, height]; unset = the base model's (512 SD1.5, 1024 SDXL)."))
    enable_bucket: bool = Field(True, description="Aspect-ratio bucketing; off = every image cropped to the resolution.")
    min_bucket_reso: int = Field(256, ge=64, le=MAX_SIDE, description="Smallest bucket side in pixels.")
    max_bucket_reso: int | None = Field(None, ge=64, le=2 * MAX_SIDE, description="Largest bucket side; unset = twice the resolution.")
    bucket_reso_steps: int = Field(64, ge=8, le=1024, description="Bucket sides are multiples of this (a multiple of 32 for SDXL).")
    bucket_no_upscale: bool = Field(False, description="Never upscale: small images get a bucket of their own size.")
    resize_interpolation: Literal["auto", "area", "lanczos", "bicubic", "bilinear", "nearest"] = Field(
        "auto", description="Resampling filter; auto = area to downscale and lanczos to upscale (kohya's choice).")

    @field_validator("resolution", mode="before")
    @classmethod
    def _reso(cls, v):
        if isinstance(v, str):  # kohya: "1024,1024"
            v = parse_resolution(v)
        if isinstance(v, list):
            v = tuple(v)
        return v

    @field_validator("resolution")
    @classmethod
    def _reso_range(cls, v):
        for side in ([v] if isinstance(v, int) else v or []):
            if not 64 <= side <= MAX_SIDE:
                raise ValueError(f"a side of {side} pixels is outside 64 .. {MAX_SIDE}")
        return v

    @model_validator(mode="after")
    def _bucket_range(self) -> "BucketConfig":
        if self.max_bucket_reso is not None and self.max_bucket_reso < self.min_bucket_reso:
            raise ValueError(f"max_bucket_reso ({self.max_bucket_reso}) is below min_bucket_reso ({self.min_bucket_reso})")
        return self


class SubsetOptions(SectionModel):
    """Per-subset caption and augmentation options; [train.data] holds their defaults."""

    caption_extension: str = Field(".txt", description="Caption file extension beside each image.")
    shuffle_caption: bool = Field(True, description="Shuffle comma-separated tags each time an image is seen.")
    keep_tokens: int | None = Field(None, ge=0, le=1000, description=(
        "Leading tags kept in place when shuffling; unset = [caption].keep_tokens, else the number of trigger words."))
    keep_tokens_separator: str = Field("", description=(
        "If set (e.g. '|||'), tags before it stay fixed and tags after a second one stay fixed at the end."))
    secondary_separator: str = Field("", description="Tags joined by this (e.g. ';;;') move and drop as one tag.")
    caption_separator: str = Field(",", description="Separator between tags.")
    caption_prefix: str = Field("", description="Text put before every caption.")
    caption_suffix: str = Field("", description="Text put after every caption.")
    caption_dropout_rate: float = Field(0.0, ge=0, le=1, description="Chance that a whole caption is dropped (empty).")
    caption_dropout_every_n_epochs: int = Field(0, ge=0, description="Drop all captions every N-th epoch (0 = never).")
    caption_tag_dropout_rate: float = Field(0.0, ge=0, le=1, description="Chance that each unfixed tag is dropped.")
    enable_wildcard: bool = Field(False, description=(
        "Multi-line captions: pick one random line and expand {a|b} wildcards ({{ and }} are literal braces)."))
    flip_aug: bool = Field(False, description="Mirror images at random (avoid for asymmetric characters).")
    random_crop: bool = Field(False, description="Random instead of centre crop to the bucket (off when latents are cached).")
    color_aug: bool = Field(False, description="Small random hue shifts (off when latents are cached).")


class _Overrides(SectionModel):
    """Only the options a table sets: unset ones (None) are left out of dumps and config.resolved.toml."""

    @model_serializer(mode="wrap")
    def _set_only(self, handler):
        return {k: v for k, v in handler(self).items() if v is not None}


def _optional_copy(model: type[SectionModel], name: str, doc: str) -> type[SectionModel]:
    """`model` with every field optional (None = not set here), keeping each field's checks."""
    def optional(f):
        ann = Optional[f.annotation]
        return Annotated[(ann, *f.metadata)] if f.metadata else ann

    return create_model(name, __base__=_Overrides, __doc__=doc, **{
        k: (optional(f), Field(None, description=f.description)) for k, f in model.model_fields.items()})


SubsetOverride = _optional_copy(SubsetOptions, "SubsetOverride", (
    "[train.data.subsets.<name>]: options of one subset that differ from [train.data] (kohya's per-subset keys)."))


class DataConfig(SubsetOptions):
    train_data_dir: str | None = Field(None, description=(
        "A folder of kohya-style N_name subfolders (or one image folder); unset = the project's dataset/."))
    reg_data_dir: str | None = Field(None, description="A folder of N_name regularisation subfolders.")
    dataset_config: str | None = Field(None, description="A kohya dataset TOML ([general], [[datasets]], [[datasets.subsets]]).")
    default_repeats: int = Field(1, ge=1, le=MAX_REPEATS, description="Repeats for an image folder whose name has no N_ prefix.")
    subsets: dict[str, SubsetOverride] = Field(default_factory=dict, description=(
        "Per-subset options by subset name (the folder name without its N_ prefix), e.g. "
        "[train.data.subsets.back] flip_aug = true; a dataset TOML sets them in its own subsets instead."))


class CacheConfig(SectionModel):
    cache_latents: bool = Field(True, description=(
        "Encode every image once with the VAE (the VAE is about a third of an SDXL step); disables random crop "
        "and colour augmentation."))
    cache_latents_to_disk: bool = Field(False, description="Keep cached latents in cache/latents/ across runs.")
    cache_text_encoder_outputs: bool = Field(False, description=(
        "Encode each caption once; needs frozen text encoders and static captions (disables shuffle and dropouts)."))
    vae_batch_size: int = Field(1, ge=1, le=1024, description="Images per VAE call while caching latents.")


class SaveConfig(SectionModel):
    save_every_n_epochs: int | None = Field(1, ge=1, description="Save a checkpoint every N epochs (unset = only at the end).")
    save_every_n_steps: int | None = Field(None, ge=1, description="Also save every N steps.")
    save_last_n_epochs: int | None = Field(None, ge=1, description="Keep only the last N epoch checkpoints (unset = all).")
    save_last_n_steps: int | None = Field(None, ge=1, description="Keep only the last N step checkpoints (unset = all).")
    save_precision: Literal["float", "fp16", "bf16"] = Field("fp16", description="dtype of the saved LoRA tensors.")
    save_state: bool = Field(True, description=(
        "Save the full training state (optimizer, scheduler, RNG, data position) with each checkpoint, "
        "so `kiln train --resume` continues exactly."))
    save_state_every_n_steps: int | None = Field(None, ge=1, description="Also save the state every N steps.")
    save_last_n_states: int = Field(1, ge=1, description="How many saved states to keep.")


class SampleConfig(SectionModel):
    sample_prompts: str | None = Field(None, description="Prompt file in kohya's syntax (--n --w --h --d --s --l --ss).")
    sample_every_n_epochs: int | None = Field(None, ge=1, description="Sample every N epochs.")
    sample_every_n_steps: int | None = Field(None, ge=1, description="Sample every N steps.")
    sample_at_first: bool = Field(False, description="Also sample before the first step.")
    sample_sampler: str = Field("euler_a", description="Default sampler for prompts without --ss.")


@section("train")
class TrainConfig(SectionModel):
    """Settings for `kiln train`; sub-tables group the options by concern."""

    base: str | None = Field(None, description="Base model for training; unset = [project].base.")
    vae: str | None = Field(None, description="External VAE file or folder (e.g. the SDXL VAE with Pony).")
    allow_pickle: bool = Field(False, description=(
        "Accept a pickled base checkpoint (.ckpt/.pt/.bin), read with torch.load(weights_only=True); "
        "off = refused, since unpickling can run code."))
    output_name: str | None = Field(None, description="LoRA file name stem (kohya --output_name); unset = project name.")
    training_comment: str = Field("", description="Free text stored in the file's ss_training_comment.")
    max_train_epochs: int = Field(10, ge=1, le=100_000, description="Epochs to train (kohya --max_train_epochs).")
    max_train_steps: int | None = Field(None, ge=1, description="Stop after this many steps even if epochs remain.")
    train_batch_size: int = Field(2, ge=1, le=4096, description="Images per step per device.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=4096, description="Batches accumulated per optimizer step.")
    seed: int = Field(42, ge=0, description="Seed for everything random: order, augmentation, noise, timesteps.")
    mixed_precision: Precision = Field("auto", description=(
        "auto = bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU."))
    full_bf16: bool = Field(False, description="Keep the adapter weights and gradients in bf16 too (saves memory).")
    no_half_vae: bool = Field(True, description="Run the VAE in fp32 (fp16 SDXL VAEs give NaNs).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward: less memory, ~1.3x compute.")
    clip_skip: int | None = Field(None, ge=1, le=12, description="Use the N-th last text-encoder layer (2 for NAI-derived models).")
    max_token_length: Literal[75, 150, 225] = Field(75, description="Caption tokens (75, 150 or 225 in 75-token chunks).")
    log_tensorboard: bool = Field(False, description="Also write TensorBoard logs to runs/<id>/tensorboard (if installed).")

    network: NetworkConfig = Field(default_factory=NetworkConfig, description="[train.network]: the adapter.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="[train.optimizer]: optimizer and LR schedule.")
    loss: LossConfig = Field(default_factory=LossConfig, description="[train.loss]: noise, timesteps and loss weighting.")
    buckets: BucketConfig = Field(default_factory=BucketConfig, description="[train.buckets]: resolution and aspect buckets.")
    data: DataConfig = Field(default_factory=DataConfig, description="[train.data]: folders and caption/augmentation defaults.")
    cache: CacheConfig = Field(default_factory=CacheConfig, description="[train.cache]: latent and text-encoder caching.")
    save: SaveConfig = Field(default_factory=SaveConfig, description="[train.save]: checkpoints and states.")
    sample: SampleConfig = Field(default_factory=SampleConfig, description="[train.sample]: sample images during training.")
