"""kohya dataset TOML -> DatasetSpecs ([general], [[datasets]], [[datasets.subsets]]).

Options "ascend": a subset's own keys win over its dataset's, which win over [general],
which win over the project's [train.data]/[train.buckets]. Keys kohya knows but lorakiln does
not use are listed in notes; unknown keys are errors naming the file and the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lorakiln.config.export import MAX_REPEATS
from lorakiln.config.messages import describe, did_you_mean
from lorakiln.config.tomlfile import load_toml
from lorakiln.config.train import BucketConfig, SubsetOptions
from lorakiln.core.errors import ConfigError
from lorakiln.train.data import DatasetSpec, SubsetSpec, parse_folder_name

DATASET_KEYS = set(BucketConfig.model_fields) | {"batch_size"}
SUBSET_KEYS = set(SubsetOptions.model_fields) | {"image_dir", "num_repeats", "is_reg", "class_tokens"}
IGNORED = {
    "network_multiplier": "per-dataset LoRA multiplier",
    "validation_seed": "validation split", "validation_split": "validation split",
    "face_crop_aug_range": "face crop augmentation", "token_warmup_min": "token warmup",
    "token_warmup_step": "token warmup", "cache_info": "kohya's own cache file",
    "alpha_mask": "masked loss", "custom_attributes": "custom attributes",
    "conditioning_data_dir": "ControlNet data", "debug_dataset": "kohya debug option",
}


def _check(table: dict, allowed: set, where: str, path: Path, notes: list[str]) -> dict:
    out = {}
    for k, v in table.items():
        if k in ("datasets", "subsets"):
            continue
        if k in IGNORED:
            notes.append(f"{path}: {where}.{k} ignored ({IGNORED[k]} is not supported)")
        elif k == "metadata_file":
            raise ConfigError(path, f"{where}: fine-tuning metadata_file subsets are not supported; "
                                    "use image_dir folders with caption files")
        elif k not in allowed:
            raise ConfigError(path, f"{where}: unknown key {k!r}{did_you_mean(k, allowed | set(IGNORED))}")
        else:
            out[k] = v
    return out


def _count(raw: dict, key: str, default: int, top: int, path: Path, where: str) -> int:
    """A whole number in 1..top (num_repeats, batch_size): anything else names the table and key."""
    v: Any = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
        raise ConfigError(path, f"{where}: {key} must be a whole number from 1 to {top}, not {v!r}")
    return v


def _image_dir(value: str, toml_path: Path) -> Path:
    p = Path(value).expanduser()
    if not p.is_absolute():
        beside = toml_path.parent / p
        p = beside if beside.exists() else Path.cwd() / p
    if not p.is_dir():
        raise ConfigError(toml_path, f"image_dir {value!r} is not a folder")
    return p


def _subset(raw: dict, defaults: SubsetOptions, path: Path, where: str) -> SubsetSpec:
    if "image_dir" not in raw:
        raise ConfigError(path, f"{where}: image_dir is required")
    if not isinstance(raw["image_dir"], str):
        raise ConfigError(path, f"{where}: image_dir must be a folder path (text), not {raw['image_dir']!r}")
    image_dir = _image_dir(raw["image_dir"], path)
    opts_raw = {k: v for k, v in raw.items() if k in SubsetOptions.model_fields}
    try:
        opts = SubsetOptions.model_validate({**defaults.model_dump(), **opts_raw})
    except ValidationError as e:
        raise ConfigError(path, f"{where}: {describe(e, SubsetOptions)}") from None
    parsed = parse_folder_name(image_dir.name)
    repeats = _count(raw, "num_repeats", 1, MAX_REPEATS, path, where)
    cls = raw.get("class_tokens") or (parsed[1] if parsed else None)
    return SubsetSpec(image_dir.name, image_dir, repeats, opts, bool(raw.get("is_reg", False)), cls)


def load_dataset_toml(path: Path, defaults: SubsetOptions, buckets: BucketConfig, batch_size: int,
                      notes: list[str]) -> list[DatasetSpec]:
    path = Path(path)
    doc = load_toml(path, "the dataset config").unwrap()
    unknown = set(doc) - {"general", "datasets"}
    if unknown:
        raise ConfigError(path, f"unknown top-level table(s) {sorted(unknown)}; expected [general] and [[datasets]]")
    general = _check(_table(doc.get("general", {}), "[general]", path), DATASET_KEYS | SUBSET_KEYS, "[general]",
                     path, notes)
    datasets = doc.get("datasets") or []
    if not datasets:
        raise ConfigError(path, "no [[datasets]] defined")
    if not isinstance(datasets, list):
        raise ConfigError(path, "datasets must be an array of tables: write each as [[datasets]]")
    out = []
    for i, ds in enumerate(datasets, 1):
        ds = _table(ds, f"[[datasets]] #{i}", path)
        ds_raw = {**general, **_check(ds, DATASET_KEYS | SUBSET_KEYS, f"[[datasets]] #{i}", path, notes)}
        bucket_raw = {k: v for k, v in ds_raw.items() if k in BucketConfig.model_fields}
        try:
            bcfg = BucketConfig.model_validate({**buckets.model_dump(), **bucket_raw})
        except ValidationError as e:
            raise ConfigError(path, f"[[datasets]] #{i}: {describe(e, BucketConfig)}") from None
        subsets = []
        raw_subsets = ds.get("subsets") or []
        if not isinstance(raw_subsets, list):
            raise ConfigError(path, f"[[datasets]] #{i}: subsets must be written as [[datasets.subsets]] tables")
        for j, sub in enumerate(raw_subsets, 1):
            where = f"[[datasets]] #{i} subset #{j}"
            sub_raw = {**{k: v for k, v in ds_raw.items() if k in SUBSET_KEYS},
                       **_check(_table(sub, where, path), SUBSET_KEYS, where, path, notes)}
            subsets.append(_subset(sub_raw, defaults, path, where))
        if not subsets:
            raise ConfigError(path, f"[[datasets]] #{i} has no [[datasets.subsets]]")
        out.append(DatasetSpec(subsets, bcfg, _count({"batch_size": batch_size, **ds_raw}, "batch_size", batch_size,
                                                     4096, path, f"[[datasets]] #{i}")))
    return out


def _table(value: Any, where: str, path: Path) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(path, f"{where} must be a table, not {type(value).__name__} {value!r}"[:200])
    return value
