"""File-level helpers shared by merge, resize, extract, bake, info and card: loading inputs,
output dtypes, a lazy base-weight lookup on a checkpoint, and input provenance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_file import check_finite, read_lora, tensor_hash
from lorakiln.formats.lora_model import parse_lora
from lorakiln.formats.safetensors_io import FormatError, load_tensor, read_header
from lorakiln.merge.checkpoint_keys import checkpoint_targets
from lorakiln.merge.delta import BaseLookup, Source

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
MAX_WEIGHT = 100.0  # |weight| beyond this is a typo, not a strength (A1111 users stay within ±5)


def check_weight(where: str, weight: float) -> float:
    """A LoRA weight must be a finite number with |w| <= MAX_WEIGHT; else a KilnError naming `where`."""
    if not math.isfinite(weight):
        raise KilnError(f"{where}: the weight is not a finite number (NaN, infinite or too large to represent); "
                        f"weights must lie between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    if abs(weight) > MAX_WEIGHT:
        raise KilnError(f"{where}: the weight {weight:g} is out of range; "
                        f"weights must lie between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}")
    return weight


def parse_weighted(spec: str, default: float = 1.0) -> tuple[Path, float]:
    """"a.safetensors:0.6" -> (a.safetensors, 0.6); without ":w" the weight is `default`.
    A file whose own name ends in ":something" wins over the weight reading; otherwise text
    after the last colon that is not a finite number within ±MAX_WEIGHT is refused."""
    path, colon, tail = spec.rpartition(":")
    if not colon or not path or Path(spec).exists() or "/" in tail or "\\" in tail:
        return Path(spec), default
    try:
        weight = float(tail)
    except ValueError:
        if Path(path).exists():
            raise KilnError(f"{spec}: {tail!r} is not a weight; write FILE:WEIGHT with a number, "
                            "e.g. a.safetensors:0.6") from None
        return Path(spec), default
    return Path(path), check_weight(spec, weight)


def dtype_of(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    try:
        return DTYPES[name]
    except KeyError:
        raise KilnError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in DTYPES.items()}.get(dtype, str(dtype))


def load_source(path: Path, weight: float = 1.0) -> Source:
    tensors, meta = read_lora(path)
    check_finite(path, tensors)
    model = parse_lora(tensors, path.name)
    if not tensors:
        raise KilnError(f"{path}: holds no tensors at all: no LoRA modules, nothing to apply")
    if not model.modules:
        raise KilnError(f"{path}: no LoRA modules found (kohya keys lora_unet_*/lora_te*_ with "
                        "lora_down/lora_up, hada_*, lokr_* or diff); is it a checkpoint or a diffusers-format LoRA?")
    return Source(path.name, model, weight, meta)


def float_dtype(source: Source) -> torch.dtype:
    """The dtype the input stores its factors in (the default for outputs made from it)."""
    for m in source.model.modules.values():
        for t in m.tensors.values():
            if t.is_floating_point():
                return t.dtype
    return torch.float16


def input_record(path: Path, weight: float | None = None) -> dict[str, Any]:
    """Provenance of one input: file name only (never a path), tensor hash, weight."""
    rec: dict[str, Any] = {"file": Path(path).name, "sshs_model_hash": tensor_hash(path)}
    if weight is not None:
        rec["weight"] = weight
    return rec


def checkpoint_record(path: Path) -> dict[str, Any]:
    """A checkpoint is identified by name and its data-section hash (AutoV3-style; metadata
    edits do not change it, and it avoids a second full read for AutoV2)."""
    return {"file": Path(path).name, "tensor_sha256": tensor_hash(path)}


def checkpoint_lookup(path: Path) -> BaseLookup:
    """kohya module name -> the base weight (float32, packed rows sliced), read lazily."""
    header = read_header(path)
    _, targets = checkpoint_targets(header)

    def lookup(name: str) -> torch.Tensor | None:
        t = targets.get(name)
        if t is None:
            return None
        w = load_tensor(Path(path), header, t.key)
        if w.is_floating_point() and not bool(torch.isfinite(w).all()):
            raise FormatError(path, f"weight {t.key} holds NaN/Inf; the checkpoint is broken")
        return (w[t.rows] if t.rows else w).to(torch.float32).reshape(t.shape)

    return lookup
