"""What a LoRA file is: architecture, algorithms, ranks and alphas per part, training settings,
dataset tags and provenance — a plain dict for `kiln info`, its --json and the card."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from lorakiln.formats.lora_model import LoraModel
from lorakiln.formats.meta_json import decode
from lorakiln.merge.arch import arch_from_metadata, arch_from_tensors, detect_arch
from lorakiln.merge.metadata import PROVENANCE_KEY, read_provenance

TRAINING_KEYS = (
    "ss_output_name", "ss_sd_model_name", "ss_new_sd_model_hash", "ss_num_train_images", "ss_num_reg_images",
    "ss_num_epochs", "ss_epoch", "ss_steps", "ss_max_train_steps", "ss_batch_size_per_device", "ss_total_batch_size",
    "ss_gradient_accumulation_steps", "ss_learning_rate", "ss_unet_lr", "ss_text_encoder_lr", "ss_lr_scheduler",
    "ss_lr_warmup_steps", "ss_optimizer", "ss_resolution", "ss_clip_skip", "ss_mixed_precision", "ss_seed",
    "ss_noise_offset", "ss_min_snr_gamma", "ss_multires_noise_iterations", "ss_caption_dropout_rate",
    "ss_shuffle_caption", "ss_keep_tokens", "ss_flip_aug", "ss_cache_latents", "ss_gradient_checkpointing",
    "ss_training_started_at", "ss_training_finished_at", "ss_training_comment",
)
_HIDDEN = {"ss_tag_frequency", "ss_dataset_dirs", "ss_reg_dataset_dirs", "ss_datasets", "ss_bucket_info",
           PROVENANCE_KEY, "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args"}
_LONG = 200


def part_of(name: str) -> str:
    for prefix, part in (("lora_unet_", "unet"), ("lora_te1_", "te1"), ("lora_te2_", "te2"), ("lora_te_", "te")):
        if name.startswith(prefix):
            return part
    return "other"


# the metadata values info decodes as JSON
JSON_KEYS = ("ss_tag_frequency", "ss_dataset_dirs", "ss_network_args", PROVENANCE_KEY)


def _json(value: str | None) -> Any:
    """The decoded value; the raw text (shortened) when it is not readable JSON."""
    doc, why = decode(value)
    return doc if why is None else _short("", value)


def unreadable(metadata: dict[str, str]) -> dict[str, str]:
    """{key: why} for the JSON-valued metadata keys whose value cannot be decoded."""
    out = {}
    for key in JSON_KEYS:
        _, why = decode(metadata.get(key))
        if why:
            out[key] = why
    return out


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, float) and value.is_integer() else None


def tag_frequency(metadata: dict[str, str]) -> Counter:
    """ss_tag_frequency summed over its folders (kohya: {folder: {tag: count}}); counts that
    are not whole numbers are left out."""
    total: Counter = Counter()
    freq, _ = decode(metadata.get("ss_tag_frequency"))
    if isinstance(freq, dict):
        for tags in freq.values():
            if isinstance(tags, dict):
                for t, c in tags.items():
                    n = _count(c)
                    if n is not None and str(t).strip():
                        total[str(t).strip()] += n
    return total


def dataset_dirs(metadata: dict[str, str]) -> dict[str, dict]:
    """ss_dataset_dirs: {folder: {"n_repeats", "img_count"}}."""
    dirs, _ = decode(metadata.get("ss_dataset_dirs"))
    return {k: v for k, v in dirs.items() if isinstance(v, dict)} if isinstance(dirs, dict) else {}


def module_summary(model: LoraModel) -> dict[str, Any]:
    by_part, by_algo, ranks, alphas = Counter(), Counter(), Counter(), Counter()
    conv = dora = 0
    for name, m in model.modules.items():
        by_part[part_of(name)] += 1
        by_algo[m.algo] += 1
        ranks[str(m.rank) if m.rank is not None else "full"] += 1
        alphas[f"{m.alpha:g}" if m.alpha is not None else "none (= rank)"] += 1
        conv += len(m.shape) == 4 and m.shape[2] * m.shape[3] > 1
        dora += m.dora_scale is not None
    return {"total": len(model.modules), "by_part": dict(by_part), "by_algo": dict(by_algo),
            "ranks": dict(ranks.most_common()), "alphas": dict(alphas.most_common()), "conv_kxk": conv,
            "dora": dora, "ignored_count": len(model.ignored), "ignored_examples": model.ignored[:10]}


def per_module(model: LoraModel) -> list[dict[str, Any]]:
    """Every module: name, part, algorithm, rank, alpha (None = rank), scale, target shape, DoRA."""
    return [{"name": name, "part": part_of(name), "algo": m.algo, "rank": m.rank, "alpha": m.alpha,
             "scale": m.scale, "shape": list(m.shape), "dora": m.dora_scale is not None}
            for name, m in sorted(model.modules.items())]


def _timestamp(value: str) -> str:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return value


def _short(key: str, value: str) -> str:
    if key == "ssmd_cover_images" or key == "modelspec.thumbnail":
        return f"<{len(value)} characters of image data>"
    return value if len(value) <= _LONG else value[:_LONG] + f"... ({len(value)} characters)"


def describe(model: LoraModel, metadata: dict[str, str], top: int = 20) -> dict[str, Any]:
    """Everything `kiln info` shows, without the file hashes (the service adds those)."""
    training = {k: metadata[k] for k in TRAINING_KEYS if k in metadata}
    for k in ("ss_training_started_at", "ss_training_finished_at"):
        if k in training:
            training[k] = _timestamp(training[k])
    shown = _HIDDEN | set(TRAINING_KEYS)
    return {
        "architecture": {"detected": detect_arch(model, metadata),
                         "from_tensors": arch_from_tensors(model), "from_metadata": arch_from_metadata(metadata)},
        "network": {"module": metadata.get("ss_network_module"), "dim": metadata.get("ss_network_dim"),
                    "alpha": metadata.get("ss_network_alpha"), "args": _json(metadata.get("ss_network_args"))},
        "modules": module_summary(model),
        "per_module": per_module(model),
        "training": training,
        "dataset": {"dirs": dataset_dirs(metadata), "tag_frequency_top": tag_frequency(metadata).most_common(top)},
        "provenance": read_provenance(metadata),
        "metadata": {k: _short(k, v) for k, v in sorted(metadata.items()) if k not in shown},
        "unreadable": unreadable(metadata),
    }
