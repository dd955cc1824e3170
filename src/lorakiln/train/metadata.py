"""The training part of a LoRA file's metadata: kohya's ss_* keys, ModelSpec and provenance.

The network adds the adapter keys (ss_network_*, ss_base_model_version, modelspec.architecture
...). Everything here is a string (kohya's rule; dicts as JSON), names are basenames only: no
absolute local path and no secret ever goes in (tests check both).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from lorakiln import __version__
from lorakiln.merge.metadata import modelspec_date
from lorakiln.train.caption_proc import tag_counts


@dataclass
class DataSummary:
    """Counts per subset folder, computed once from the scanned datasets."""

    dataset_dirs: dict[str, dict] = field(default_factory=dict)  # {dir: {n_repeats, img_count}}
    reg_dataset_dirs: dict[str, dict] = field(default_factory=dict)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)
    num_train_images: int = 0  # with repeats, as kohya counts
    num_reg_images: int = 0
    bucket_info: dict = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)  # ss_datasets (dataset-TOML runs)


def summarize(datasets: list, bucket_infos: list[dict]) -> DataSummary:
    """DataSummary of scanned datasets (train.data.ScannedDataset)."""
    s = DataSummary()
    freq: dict[str, Counter] = {}
    for scanned, binfo in zip(datasets, bucket_infos):
        ds_meta = {"batch_size_per_device": scanned.spec.batch_size, "bucket_info": binfo, "subsets": []}
        for i, sub in enumerate(scanned.spec.subsets):
            items = scanned.subset_items(i)
            target = s.reg_dataset_dirs if sub.is_reg else s.dataset_dirs
            entry = target.setdefault(sub.name, {"n_repeats": sub.num_repeats, "img_count": 0})
            entry["img_count"] += len(items)
            if sub.is_reg:
                s.num_reg_images += len(items) * sub.num_repeats
            else:
                s.num_train_images += len(items) * sub.num_repeats
                opts = sub.options
                freq.setdefault(sub.name, Counter()).update(
                    tag_counts([it.caption for it in items], opts.caption_separator, opts.keep_tokens_separator))
            ds_meta["subsets"].append(_subset_meta(sub, len(items)))
        s.datasets.append(ds_meta)
    s.tag_frequency = {k: dict(v.most_common()) for k, v in freq.items()}
    s.bucket_info = bucket_infos[0] if len(bucket_infos) == 1 else {"datasets": bucket_infos}
    return s


def _subset_meta(sub, img_count: int) -> dict:
    o = sub.options
    return {"img_count": img_count, "num_repeats": sub.num_repeats, "image_dir": PurePath(sub.image_dir).name,
            "class_tokens": sub.class_tokens, "is_reg": sub.is_reg, "flip_aug": o.flip_aug,
            "color_aug": o.color_aug, "random_crop": o.random_crop, "shuffle_caption": o.shuffle_caption,
            "keep_tokens": o.keep_tokens, "keep_tokens_separator": o.keep_tokens_separator,
            "secondary_separator": o.secondary_separator, "enable_wildcard": o.enable_wildcard,
            "caption_prefix": o.caption_prefix, "caption_suffix": o.caption_suffix}


@dataclass
class RunFacts:
    """What the run decided that is not in the config itself."""

    session_id: int
    started_at: float
    output_name: str
    resolution: tuple[int, int]
    batches_per_epoch: int
    max_train_steps: int
    warmup_steps: int
    optimizer: str  # "AdamW(weight_decay=0.1,...)"
    mixed_precision: str
    clip_skip: int
    base: dict[str, Any]  # name (basename or hub id), legacy_hash, sha256, vae
    trigger: list[str]
    dataset_hash: str
    config_hash: str
    run_id: str
    first_subset: Any = None  # SubsetOptions for the legacy ss_* dataset keys


def _b(v: Any) -> str:
    return str(bool(v))


def modelspec_identity(facts: RunFacts) -> dict[str, str]:
    """The ModelSpec MUST/SHOULD keys kohya always writes: title (the output name, as sd-scripts
    does without --metadata_title) and date (ISO-8601 with UTC offset, the run's start), plus the
    spec version, so every file kiln train writes carries them whatever network wrote the rest."""
    return {"modelspec.sai_model_spec": "1.0.1", "modelspec.title": facts.output_name,
            "modelspec.date": modelspec_date(facts.started_at)}


def training_metadata(cfg, facts: RunFacts, data: DataSummary, *, epoch: int, step: int,
                      finished_at: float | None = None) -> dict[str, str]:
    """ss_* / modelspec.* / lorakiln_* keys for one saved file (cfg: TrainConfig)."""
    o, loss, b, net = cfg.optimizer, cfg.loss, cfg.buckets, cfg.network
    te_lr = o.text_encoder_lr if o.text_encoder_lr is not None else o.learning_rate
    sub = facts.first_subset
    base = facts.base
    meta: dict[str, Any] = {
        "ss_session_id": facts.session_id, "ss_training_started_at": facts.started_at,
        "ss_training_finished_at": finished_at if finished_at is not None else "",
        "ss_output_name": facts.output_name, "ss_training_comment": cfg.training_comment,
        "ss_learning_rate": o.learning_rate, "ss_unet_lr": o.unet_lr if o.unet_lr is not None else o.learning_rate,
        "ss_text_encoder_lr": 0 if net.network_train_unet_only else te_lr,
        "ss_num_train_images": data.num_train_images, "ss_num_reg_images": data.num_reg_images,
        "ss_num_batches_per_epoch": facts.batches_per_epoch, "ss_num_epochs": cfg.max_train_epochs,
        "ss_epoch": epoch, "ss_steps": step, "ss_max_train_steps": facts.max_train_steps,
        "ss_lr_warmup_steps": facts.warmup_steps, "ss_lr_scheduler": o.lr_scheduler, "ss_optimizer": facts.optimizer,
        "ss_max_grad_norm": o.max_grad_norm, "ss_gradient_checkpointing": _b(cfg.gradient_checkpointing),
        "ss_gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "ss_batch_size_per_device": cfg.train_batch_size,
        "ss_total_batch_size": cfg.train_batch_size * cfg.gradient_accumulation_steps,
        "ss_mixed_precision": facts.mixed_precision, "ss_full_fp16": "False", "ss_full_bf16": _b(cfg.full_bf16),
        "ss_clip_skip": facts.clip_skip, "ss_max_token_length": cfg.max_token_length, "ss_seed": cfg.seed,
        "ss_cache_latents": _b(cfg.cache.cache_latents), "ss_resolution": str(tuple(facts.resolution)),
        "ss_enable_bucket": _b(b.enable_bucket), "ss_min_bucket_reso": b.min_bucket_reso,
        "ss_max_bucket_reso": b.max_bucket_reso or max(facts.resolution) * 2,
        "ss_bucket_no_upscale": _b(b.bucket_no_upscale), "ss_resize_interpolation": b.resize_interpolation,
        "ss_bucket_info": data.bucket_info, "ss_dataset_dirs": data.dataset_dirs,
        "ss_reg_dataset_dirs": data.reg_dataset_dirs, "ss_tag_frequency": data.tag_frequency,
        "ss_datasets": data.datasets,
        "ss_loss_type": loss.loss_type, "ss_huber_c": loss.huber_c, "ss_huber_schedule": loss.huber_schedule,
        "ss_huber_scale": loss.huber_scale, "ss_min_snr_gamma": loss.min_snr_gamma,
        "ss_debiased_estimation": _b(loss.debiased_estimation_loss), "ss_noise_offset": loss.noise_offset,
        "ss_noise_offset_random_strength": _b(loss.noise_offset_random_strength),
        "ss_multires_noise_iterations": loss.multires_noise_iterations,
        "ss_multires_noise_discount": loss.multires_noise_discount,
        "ss_zero_terminal_snr": _b(loss.zero_terminal_snr), "ss_prior_loss_weight": loss.prior_loss_weight,
        "ss_sd_model_name": base.get("name"), "ss_sd_model_hash": base.get("legacy_hash"),
        "ss_new_sd_model_hash": base.get("sha256"), "ss_vae_name": base.get("vae"),
        **modelspec_identity(facts), "modelspec.resolution": "x".join(map(str, facts.resolution)),
        "modelspec.trigger_phrase": ", ".join(facts.trigger),
        "lorakiln_version": __version__, "lorakiln_run_id": facts.run_id,
        "lorakiln_dataset_hash": facts.dataset_hash, "lorakiln_config_hash": facts.config_hash,
        "lorakiln_base_model_sha256": base.get("sha256"), "lorakiln_trigger": ", ".join(facts.trigger),
    }
    if sub is not None:
        meta.update({"ss_keep_tokens": sub.keep_tokens, "ss_shuffle_caption": _b(sub.shuffle_caption),
                     "ss_caption_dropout_rate": sub.caption_dropout_rate,
                     "ss_caption_dropout_every_n_epochs": sub.caption_dropout_every_n_epochs,
                     "ss_caption_tag_dropout_rate": sub.caption_tag_dropout_rate,
                     "ss_flip_aug": _b(sub.flip_aug), "ss_color_aug": _b(sub.color_aug),
                     "ss_random_crop": _b(sub.random_crop)})
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v))
            for k, v in meta.items() if v is not None}
