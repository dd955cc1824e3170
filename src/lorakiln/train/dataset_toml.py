"""kohya dataset TOML -> DatasetSpecs ([general], [[datasets]], [[datasets.subsets]]).

Options "ascend": a subset's own keys win over its dataset's, which win over [general],
which win over the project's [train.data]/[train.buckets]. Keys kohya knows but lorakiln does
not use are listed in notes; unknown keys are errors naming the file and the table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

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
            raise ConfigError(path, f"{where}: unknown key {k!r}")
        else:
            out[k] = v
    return out


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
    image_dir = _image_dir(str(raw["image_dir"]), path)
    opts_raw = {k: v for k, v in raw.items() if k in SubsetOptions.model_fields}
    try:
        opts = SubsetOptions.model_validate({**defaults.model_dump(), **opts_raw})
    except ValidationError as e:
        raise ConfigError(path, f"{where}: {e.errors()[0]['loc'][0]}: {e.errors()[0]['msg']}") from None
    parsed = parse_folder_name(image_dir.name)
    repeats = int(raw.get("num_repeats", 1))
    if repeats < 1:
        raise ConfigError(path, f"{where}: num_repeats must be at least 1")
    cls = raw.get("class_tokens") or (parsed[1] if parsed else None)
    return SubsetSpec(image_dir.name, image_dir, repeats, opts, bool(raw.get("is_reg", False)), cls)


def load_dataset_toml(path: Path, defaults: SubsetOptions, buckets: BucketConfig, batch_size: int,
                      notes: list[str]) -> list[DatasetSpec]:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(path, f"cannot read the dataset config: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, f"not valid TOML: {e}") from None
    unknown = set(doc) - {"general", "datasets"}
    if unknown:
        raise ConfigError(path, f"unknown top-level table(s) {sorted(unknown)}; expected [general] and [[datasets]]")
    general = _check(doc.get("general", {}), DATASET_KEYS | SUBSET_KEYS, "[general]", path, notes)
    datasets = doc.get("datasets") or []
    if not datasets:
        raise ConfigError(path, "no [[datasets]] defined")
    out = []
    for i, ds in enumerate(datasets, 1):
        ds_raw = {**general, **_check(ds, DATASET_KEYS | SUBSET_KEYS, f"[[datasets]] #{i}", path, notes)}
        bucket_raw = {k: v for k, v in ds_raw.items() if k in BucketConfig.model_fields}
        try:
            bcfg = BucketConfig.model_validate({**buckets.model_dump(), **bucket_raw})
        except ValidationError as e:
            raise ConfigError(path, f"[[datasets]] #{i}: {e.errors()[0]['msg']}") from None
        subsets = []
        for j, sub in enumerate(ds.get("subsets") or [], 1):
            where = f"[[datasets]] #{i} subset #{j}"
            sub_raw = {**{k: v for k, v in ds_raw.items() if k in SUBSET_KEYS},
                       **_check(sub, SUBSET_KEYS, where, path, notes)}
            subsets.append(_subset(sub_raw, defaults, path, where))
        if not subsets:
            raise ConfigError(path, f"[[datasets]] #{i} has no [[datasets.subsets]]")
        out.append(DatasetSpec(subsets, bcfg, int(ds_raw.get("batch_size", batch_size))))
    return out
