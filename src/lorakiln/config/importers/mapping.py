"""kohya option names (sd-scripts, kohya_ss GUI, LoRA Easy Training Scripts) -> our sections.

One table: key -> Rule(targets, convert). `convert(value, source)` returns the value to write
or raises Skip(reason); a Rule without targets is a key we know and ignore, with its reason.
`source` is the whole table the key came from, for keys that depend on another (LoRA_type).
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lorakiln.config.train import parse_resolution

# names the training engine registers (tests check these against its registries)
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial", "rex")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "CAME", "Adafactor")

T = ("train",)
NET, OPT, LOSS = ("train", "network"), ("train", "optimizer"), ("train", "loss")
BUCK, DATA, CACHE = ("train", "buckets"), ("train", "data"), ("train", "cache")
SAVE, SAMPLE = ("train", "save"), ("train", "sample")


class Skip(Exception):
    """Raised by a converter: the key is known but not imported, for this reason."""


Convert = Callable[[Any, Mapping], Any]


@dataclass(frozen=True)
class Rule:
    targets: tuple[tuple[str, ...], ...] = ()
    convert: Convert | None = None
    reason: str = ""  # why a key without targets is ignored


def _same(v, src):
    return v


def to_int(v, src=None) -> int:
    if isinstance(v, bool):
        raise Skip(f"expected a number, got {v!r}")
    if isinstance(v, int):
        return v  # exact, however large: the section model says whether it fits
    if isinstance(v, str) and re.fullmatch(r"\s*[-+]?\d+\s*", v):
        return int(v)
    f = to_float(v)
    if f != int(f):
        raise Skip(f"expected a whole number, got {v!r}")
    return int(f)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:inf|infinity|nan)", re.I)
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 60, 60, 40


def short(value: Any) -> str:
    """A value for a message: its repr, cut short (an imported value can be huge or deeply nested)."""
    return _REPR.repr(value)


def to_float(v, src=None) -> float:
    """A number, or text that is all one number ('1e-4'; not '1e-4x', '1_0' or '3,')."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise Skip(f"expected a number, got {short(v)}")
    if isinstance(v, str) and not _NUMBER.fullmatch(v.strip()):
        raise Skip(f"expected a number, got {short(v)}")
    f = float(v)
    if math.isnan(f):
        raise Skip(f"{v!r} is not a number (NaN)")
    if math.isinf(f):
        raise Skip(f"{short(v)} is infinite or beyond the range of a 64-bit float")
    return f


def floats(v, src=None) -> float | list[float]:
    """One number, or one per text encoder: [1e-4, 5e-5], '1e-4,5e-5' or '1e-4 5e-5' (sd-scripts takes several)."""
    if isinstance(v, str) and re.search(r"\S[\s,]+\S", v.strip()):
        v = [p for p in re.split(r"\s*,\s*|\s+", v.strip())]
    if isinstance(v, (list, tuple)):
        got = [to_float(x) for x in v]
        if not got:
            raise Skip("an empty list")
        return got[0] if len(got) == 1 else got
    return to_float(v)


def text(v, src=None) -> str:
    """A name written as text; a number, list or table is not guessed at."""
    if not isinstance(v, str):
        raise Skip(f"expected text, got {short(v)}")
    return v.strip()


def to_bool(v, src=None) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    raise Skip(f"expected true/false, got {v!r}")


def positive_or_off(conv: Convert, off: str) -> Convert:
    """kohya writes 0 for 'off' where our field is unset instead."""
    def f(v, src):
        x = conv(v, src)
        if x == 0:
            raise Skip(off)
        return x
    return f


def resolution(v, src=None):
    """'1024,1024', '768', 768, [1024, 1024] -> 1024 (square) or (w, h); '512,x' is not read at all."""
    if isinstance(v, str):
        try:
            got = parse_resolution(v)
        except ValueError as e:
            raise Skip(str(e)) from None
        parts = [got] if isinstance(got, int) else list(got)
    elif isinstance(v, (list, tuple)):
        parts = [to_int(p) for p in v]
    else:
        parts = [to_int(v)]
    if not parts or len(parts) > 2:
        raise Skip(f"cannot read a resolution from {v!r}: give one number or two")
    return parts[0] if len(parts) == 1 or parts[0] == parts[1] else (parts[0], parts[1])


def percent(v, src=None) -> float:
    """kohya_ss GUI `lr_warmup` is a percentage of all steps; ours is a fraction below 1."""
    x = to_float(v) / 100
    if not 0 <= x < 1:
        raise Skip(f"warmup {v}% is not below 100%")
    return x


def scheduler(v, src=None) -> str:
    name = text(v).lower().replace("-", "_")
    if "rex" in name:
        return "rex"
    if name in ("cosine_annealing_warm_restarts", "cosine_annealing_warm_restarts_(cawr)", "cawr"):
        return "cosine_with_restarts"
    if name not in SCHEDULERS:
        raise Skip(f"scheduler {v!r} has no equivalent (known: {', '.join(SCHEDULERS)})")
    return name


def scheduler_type(v, src=None) -> str:
    """A dotted class path (LoRA Easy Training Scripts' custom schedulers) -> our name."""
    low = text(v).lower()
    if "rex" in low:
        return "rex"
    if "cosineannealingwarmrestarts" in low:
        return "cosine_with_restarts"
    raise Skip(f"custom scheduler class {v!r} has no equivalent")


def optimizer(v, src=None) -> str:
    """Registry names in any case; known dotted paths (came_pytorch.CAME.CAME, ...) -> our name."""
    name = text(v)
    last = name.rsplit(".", 1)[-1]
    for known in OPTIMIZERS:
        if known.lower() in (name.lower(), last.lower()):
            return known
    return name  # a dotted path is imported as given by the trainer


def lora_type(v, src=None) -> str:
    """kohya_ss GUI LoRA_type -> our algo."""
    name = text(v).lower()
    if name == "standard":
        return "lora"
    for algo in ("locon", "loha", "lokr"):
        if name.endswith(algo):
            return algo
    raise Skip(f"LoRA_type {v!r} is not supported (lora, locon, loha, lokr; DoRA via dora_wd)")


def _conv_used(src: Mapping) -> bool:
    algo = str(src.get("LoRA_type", src.get("algo", "locon"))).lower()
    return algo != "standard"


def conv(v, src):
    if not _conv_used(src):
        raise Skip("LoRA_type Standard trains no conv layers")
    f = to_float(v)
    return int(f) if f.is_integer() else f


def conv_dim(v, src):
    if not _conv_used(src):
        raise Skip("LoRA_type Standard trains no conv layers")
    return to_int(v)


def lokr_factor(v, src):
    if "lokr" not in str(src.get("LoRA_type", src.get("algo", ""))).lower():
        raise Skip("LoKr factor; only used with LoKr")
    if to_int(v) == -1:
        raise Skip("-1 = LyCORIS's automatic factor (the default)")
    return {"factor": to_int(v)}


def v_pred(v, src):
    if not to_bool(v):
        raise Skip("false: the base model decides (v-prediction models set it themselves)")
    return True


def mixed(v, src=None) -> str:
    name = text(v).lower()
    if name in ("no", "fp16", "bf16"):
        return name
    raise Skip(f"mixed_precision {v!r}: use no, fp16 or bf16")


def save_precision(v, src=None) -> str:
    name = text(v).lower()
    if name in ("float", "fp16", "bf16"):
        return name
    raise Skip(f"save_precision {v!r}: use float, fp16 or bf16")


def token_length(v, src=None) -> int:
    n = to_int(v)
    if n not in (75, 150, 225):
        raise Skip(f"max_token_length {n}: use 75, 150 or 225")
    return n


_EXTENSION = re.compile(r"\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def extension(v, src=None) -> str:
    v = text(v)
    if not _EXTENSION.fullmatch(v):
        raise Skip(f"{v!r} is not one file extension such as .txt")
    return v if v.startswith(".") else "." + v


_ARG_KEY = re.compile(r"(?:^|[\s,;]+)([A-Za-z_][A-Za-z0-9_]*)\s*=")


def key_values(v: Any) -> list[tuple[str, Any]]:
    """kohya's `key=value key=value` arguments (a string, a list of such strings, or a table)."""
    if isinstance(v, Mapping):
        return list(v.items())
    if isinstance(v, (list, tuple)):
        return [kv for item in v for kv in key_values(item)]
    line = str(v)
    found = list(_ARG_KEY.finditer(line))
    if not found or line[: found[0].start()].strip(" ,;"):
        raise Skip(f"expected key=value arguments, got {v!r}")
    ends = [m.start() for m in found[1:]] + [len(line)]
    return [(m.group(1), line[m.end():end].strip().strip(",;").strip().strip("'\"")) for m, end in zip(found, ends)]


def _i(*target: str, rule: Convert = to_int) -> Rule:
    return Rule((tuple(target),), rule)


def _t(base: tuple[str, ...], key: str, conv: Convert = _same) -> Rule:
    return Rule(((*base, key),), conv)


def ign(reason: str) -> Rule:
    return Rule(reason=reason)


SDPA = "lorakiln always uses PyTorch SDPA attention (as fast as xformers, nothing to install)"
LOADER = "data loading is managed by lorakiln"
OUTPUT = "outputs always go to the project's runs/<run-id>/"
LOGS = "lorakiln logs to runs/<run-id>/events.jsonl (TensorBoard with [train].log_tensorboard)"
BLOCKS = "block-wise dims and learning rates are not supported"
NO_DATA = "lorakiln's data pipeline has no {}; trained without it"

KOHYA: dict[str, Rule] = {
    # [train]
    "epoch": _t(T, "max_train_epochs", to_int),
    "max_train_epochs": _t(T, "max_train_epochs", to_int),
    "max_train_steps": _t(T, "max_train_steps", positive_or_off(to_int, "0 = no step limit")),
    "train_batch_size": _t(T, "train_batch_size", to_int),
    "batch_size": _t(T, "train_batch_size", to_int),
    "gradient_accumulation_steps": _t(T, "gradient_accumulation_steps", to_int),
    "seed": _t(T, "seed", to_int),
    "mixed_precision": _t(T, "mixed_precision", mixed),
    "full_bf16": _t(T, "full_bf16", to_bool),
    "no_half_vae": _t(T, "no_half_vae", to_bool),
    "sdxl_no_half_vae": _t(T, "no_half_vae", to_bool),
    "gradient_checkpointing": _t(T, "gradient_checkpointing", to_bool),
    "clip_skip": _t(T, "clip_skip", to_int),
    "max_token_length": _t(T, "max_token_length", token_length),
    "output_name": _t(T, "output_name"),
    "training_comment": _t(T, "training_comment"),
    "vae": _t(T, "vae"),
    "pretrained_model_name_or_path": _t(T, "base"),
    # [train.network]
    "LoRA_type": _t(NET, "algo", lora_type),
    "algo": _t(NET, "algo", lambda v, s: lora_type(v if text(v).lower() != "lora" else "standard")),
    "network_dim": _t(NET, "network_dim", to_int),
    "network_alpha": _t(NET, "network_alpha", to_float),
    "conv_dim": _t(NET, "conv_dim", conv_dim),
    "conv_alpha": _t(NET, "conv_alpha", conv),
    "dora_wd": _t(NET, "dora_wd", to_bool),
    "network_dropout": _t(NET, "network_dropout", to_float),
    "rank_dropout": _t(NET, "rank_dropout", to_float),
    "module_dropout": _t(NET, "module_dropout", to_float),
    "network_weights": _t(NET, "network_weights"),
    "lora_network_weights": _t(NET, "network_weights"),
    "network_train_unet_only": _t(NET, "network_train_unet_only", to_bool),
    "stop_text_encoder_training": _t(NET, "stop_text_encoder_training", to_int),
    "factor": _t(NET, "network_args", lokr_factor),
    # [train.optimizer]
    "optimizer": _t(OPT, "optimizer", optimizer),
    "optimizer_type": _t(OPT, "optimizer", optimizer),
    "optimizer_args": _t(OPT, "optimizer_args"),
    "learning_rate": _t(OPT, "learning_rate", to_float),
    "unet_lr": _t(OPT, "unet_lr", to_float),
    "text_encoder_lr": _t(OPT, "text_encoder_lr", floats),
    "lr_scheduler": _t(OPT, "lr_scheduler", scheduler),
    "lr_scheduler_type": _t(OPT, "lr_scheduler", scheduler_type),
    "lr_warmup": _t(OPT, "lr_warmup_steps", percent),
    "lr_warmup_steps": _t(OPT, "lr_warmup_steps", to_float),
    "warmup_ratio": _t(OPT, "lr_warmup_steps", to_float),
    "lr_scheduler_num_cycles": _t(OPT, "lr_scheduler_num_cycles", to_int),
    "lr_scheduler_power": _t(OPT, "lr_scheduler_power", to_float),
    "min_lr": _t(OPT, "min_lr", to_float),
    "lr_scheduler_min_lr_ratio": _t(OPT, "lr_scheduler_min_lr_ratio", to_float),
    "gamma": _t(OPT, "lr_scheduler_cycle_decay", to_float),
    "max_grad_norm": _t(OPT, "max_grad_norm", to_float),
    # [train.loss]
    "loss_type": _t(LOSS, "loss_type"),
    "huber_c": _t(LOSS, "huber_c", to_float),
    "huber_schedule": _t(LOSS, "huber_schedule"),
    "huber_scale": _t(LOSS, "huber_scale", to_float),
    "min_snr_gamma": _t(LOSS, "min_snr_gamma", to_float),  # 0 = off, as in kohya
    "debiased_estimation_loss": _t(LOSS, "debiased_estimation_loss", to_bool),
    "scale_v_pred_loss_like_noise_pred": _t(LOSS, "scale_v_pred_loss_like_noise_pred", to_bool),
    "noise_offset": _t(LOSS, "noise_offset", to_float),
    "noise_offset_random_strength": _t(LOSS, "noise_offset_random_strength", to_bool),
    "multires_noise_iterations": _t(LOSS, "multires_noise_iterations", to_int),
    "multires_noise_discount": _t(LOSS, "multires_noise_discount", to_float),
    "v_parameterization": _t(LOSS, "v_parameterization", v_pred),
    "zero_terminal_snr": _t(LOSS, "zero_terminal_snr", to_bool),
    "min_timestep": _t(LOSS, "min_timestep", to_int),
    "max_timestep": _t(LOSS, "max_timestep", to_int),
    "prior_loss_weight": _t(LOSS, "prior_loss_weight", to_float),
    # [train.buckets]
    "max_resolution": _t(BUCK, "resolution", resolution),
    "resolution": _t(BUCK, "resolution", resolution),
    "enable_bucket": _t(BUCK, "enable_bucket", to_bool),
    "min_bucket_reso": _t(BUCK, "min_bucket_reso", to_int),
    "max_bucket_reso": _t(BUCK, "max_bucket_reso", to_int),
    "bucket_reso_steps": _t(BUCK, "bucket_reso_steps", to_int),
    "bucket_no_upscale": _t(BUCK, "bucket_no_upscale", to_bool),
    # [train.data] (+ [export] for the caption extension the export writes)
    "caption_extension": Rule(((*DATA, "caption_extension"), ("export", "caption_extension")), extension),
    "shuffle_caption": _t(DATA, "shuffle_caption", to_bool),
    "keep_tokens": _t(DATA, "keep_tokens", to_int),
    "keep_tokens_separator": _t(DATA, "keep_tokens_separator"),
    "secondary_separator": _t(DATA, "secondary_separator"),
    "caption_separator": _t(DATA, "caption_separator"),
    "caption_prefix": _t(DATA, "caption_prefix"),
    "caption_suffix": _t(DATA, "caption_suffix"),
    "caption_dropout_rate": _t(DATA, "caption_dropout_rate", to_float),
    "caption_dropout_every_n_epochs": _t(DATA, "caption_dropout_every_n_epochs", to_int),
    "caption_tag_dropout_rate": _t(DATA, "caption_tag_dropout_rate", to_float),
    "enable_wildcard": _t(DATA, "enable_wildcard", to_bool),
    "flip_aug": _t(DATA, "flip_aug", to_bool),
    "random_crop": _t(DATA, "random_crop", to_bool),
    "color_aug": _t(DATA, "color_aug", to_bool),
    "train_data_dir": _t(DATA, "train_data_dir"),
    "reg_data_dir": _t(DATA, "reg_data_dir"),
    "dataset_config": _t(DATA, "dataset_config"),
    # [train.cache]
    "cache_latents": _t(CACHE, "cache_latents", to_bool),
    "cache_latents_to_disk": _t(CACHE, "cache_latents_to_disk", to_bool),
    "cache_text_encoder_outputs": _t(CACHE, "cache_text_encoder_outputs", to_bool),
    "sdxl_cache_text_encoder_outputs": _t(CACHE, "cache_text_encoder_outputs", to_bool),
    "vae_batch_size": _t(CACHE, "vae_batch_size", positive_or_off(to_int, "0 = the default (1)")),
    # [train.save]
    "save_every_n_epochs": _t(SAVE, "save_every_n_epochs", positive_or_off(to_int, "0 = save only at the end")),
    "save_every_n_steps": _t(SAVE, "save_every_n_steps", positive_or_off(to_int, "0 = off")),
    "save_last_n_epochs": _t(SAVE, "save_last_n_epochs", positive_or_off(to_int, "0 = keep all")),
    "save_last_n_steps": _t(SAVE, "save_last_n_steps", positive_or_off(to_int, "0 = keep all")),
    "save_precision": _t(SAVE, "save_precision", save_precision),
    "save_state": _t(SAVE, "save_state", to_bool),
    "save_last_n_epochs_state": _t(SAVE, "save_last_n_states", positive_or_off(to_int, "0 = keep all")),
    "save_last_n_steps_state": _t(SAVE, "save_last_n_states", positive_or_off(to_int, "0 = keep all")),
    # [train.sample]
    "sample_prompts": _t(SAMPLE, "sample_prompts"),
    "sample_every_n_epochs": _t(SAMPLE, "sample_every_n_epochs", positive_or_off(to_int, "0 = no samples")),
    "sample_every_n_steps": _t(SAMPLE, "sample_every_n_steps", positive_or_off(to_int, "0 = no samples")),
    "sample_at_first": _t(SAMPLE, "sample_at_first", to_bool),
    "sample_sampler": _t(SAMPLE, "sample_sampler"),
    # known, not imported
    "xformers": ign(SDPA), "mem_eff_attn": ign(SDPA), "sdpa": ign(SDPA),
    "num_cpu_threads_per_process": ign(LOADER), "max_data_loader_n_workers": ign(LOADER),
    "persistent_data_loader_workers": ign(LOADER),
    "output_dir": ign(OUTPUT), "logging_dir": ign(OUTPUT), "log_prefix": ign(LOGS), "log_with": ign(LOGS),
    "use_wandb": ign(LOGS), "wandb_run_name": ign(LOGS), "log_tracker_name": ign(LOGS),
    "sdxl": ign("the model family comes from [project].base"),
    "v2": ign("SD2 models are not supported; the model family comes from [project].base"),
    "model_list": ign("kohya_ss GUI model picker"),
    "resume": ign("use `kiln train --resume`"),
    "save_model_as": ign("lorakiln always writes .safetensors"),
    "save_toml": ign("every run saves config.resolved.toml"),
    "full_fp16": ign("no full fp16 mode (fp16 gradients are unstable): use full_bf16"),
    "additional_parameters": ign("free-form kohya arguments are not interpreted; add their settings by hand"),
    "block_alphas": ign(BLOCKS), "block_dims": ign(BLOCKS), "block_lr_zero_threshold": ign(BLOCKS),
    "conv_block_alphas": ign(BLOCKS), "conv_block_dims": ign(BLOCKS), "down_lr_weight": ign(BLOCKS),
    "mid_lr_weight": ign(BLOCKS), "up_lr_weight": ign(BLOCKS),
    "dim_from_weights": ign("dims of network_weights are read from the file"),
    "decompose_both": ign("LyCORIS LoKr option; pass it in [train.network].network_args if needed"),
    "use_cp": ign("LyCORIS CP/Tucker option; pass use_tucker in [train.network].network_args if needed"),
    "train_on_input": ign("(IA)^3 option; (IA)^3 is not supported"),
    "unit": ign("DyLoRA unit; DyLoRA is not supported"),
    "noise_offset_type": ign("lorakiln's noise_offset is kohya's Original type; multires noise has its own keys"),
    "adaptive_noise_scale": ign("adaptive noise scale is not supported"),
    "no_token_padding": ign("not supported"),
    "weighted_captions": ign("(tag:1.2) caption weighting is not supported"),
    "scale_weight_norms": ign("max-norm regularisation is not supported"),
    "stop_text_encoder_training_pct": ign("a percentage needs the step count: set "
                                          "[train.network].stop_text_encoder_training in steps"),
    "d": ign("REX's shape parameter d is fixed in lorakiln"),
    "wandb_api_key": ign("secret: never imported"),
    "huggingface_token": ign("secret: never imported"),
    "train_mode": ign("lorakiln trains LoRA-family adapters"),
    # kohya dataset options the data pipeline does not have (reported per subset where they appear)
    "face_crop_aug_range": ign(NO_DATA.format("face crop augmentation")),
    "token_warmup_min": ign(NO_DATA.format("token warmup")),
    "token_warmup_step": ign(NO_DATA.format("token warmup")),
    "alpha_mask": ign(NO_DATA.format("masked loss (alpha_mask)")),
    "custom_attributes": ign(NO_DATA.format("custom attributes")),
    "cache_info": ign("kohya's own cache file; lorakiln keeps its caches in cache/"),
    "validation_split": ign(NO_DATA.format("a validation split")),
    "validation_seed": ign(NO_DATA.format("a validation split")),
    "conditioning_data_dir": ign(NO_DATA.format("ControlNet conditioning images")),
    "network_multiplier": ign(NO_DATA.format("a per-dataset LoRA multiplier")),
    "max_train_epochs_per_subset": ign(NO_DATA.format("per-subset epochs")),
}

# kohya --lr_scheduler_args names -> the KOHYA key that holds the same setting here
SCHEDULER_ARGS = {
    "min_lr": "min_lr",  # derrian's REX / CAWR, pytorch_optimizer's REXScheduler
    "eta_min": "min_lr",  # torch CosineAnnealingWarmRestarts
    "min_lr_rate": "lr_scheduler_min_lr_ratio",  # transformers' cosine_with_min_lr
    "gamma": "gamma",  # per-cycle decay of the restart schedulers
    "num_cycles": "lr_scheduler_num_cycles",
    "power": "lr_scheduler_power",
    "d": "d",
}
