"""kohya-format LoRA files: read, write and hash them exactly as kohya, A1111 and Civitai do.

Hashes (reference/eval-merge-formats.md §3.3, §3.5):
- `sshs_model_hash` (kohya / sd-webui-additional-networks): SHA-256 of the data section of a
  re-serialisation of the tensors that carries only the `ss_*` metadata. For a file written by
  safetensors it equals the data-section hash of the file itself, i.e. Civitai's AutoV3 and
  A1111's LoRA hash (first 12 hex).
- `sshs_legacy_hash`: first 8 hex of SHA-256 of the 64 KiB at offset 1 MiB of that same
  re-serialisation. kohya reads from a BytesIO: for a serialisation shorter than 1 MiB the read
  is empty, so the hash is SHA-256 of nothing ("e3b0c442"); a partial window hashes what exists.
- `modelspec.hash_sha256` = "0x" + sshs_model_hash (ModelSpec: all tensor content, no header).
- AutoV2: full-file SHA-256, first 10 hex. Changes whenever metadata changes; AutoV3 does not.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import save as st_save

from lorakiln.core.atomic import write_bytes
from lorakiln.formats.meta_json import decode
from lorakiln.formats.safetensors_io import (
    FormatError,
    iter_data,
    load_tensor,
    read_header,
    rewrite_header,
)

HASH_KEYS = ("sshs_model_hash", "sshs_legacy_hash", "modelspec.hash_sha256")
_LEGACY_AT, _LEGACY_LEN = 0x100000, 0x10000

__all__ = [
    "FormatError", "write_lora", "read_lora", "read_metadata", "tensor_hash", "autov2",
    "sshs_hashes", "edit_metadata", "stringify_metadata", "legacy_model_hash", "nonfinite", "check_finite",
    "check_metadata_edit",
]


def nonfinite(tensors: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Tensor name -> how many NaN/Inf values it holds, for the floating tensors that hold any."""
    bad: dict[str, int] = {}
    for k, t in tensors.items():
        if t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad[k] = n
    return bad


def describe_nonfinite(bad: Mapping[str, int], limit: int = 5) -> str:
    """'3 tensors hold NaN/Inf (12 values): a (4), b (4), ...'."""
    names = ", ".join(f"{k} ({n})" for k, n in list(bad.items())[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"{len(bad)} tensor(s) hold NaN/Inf ({sum(bad.values())} values): {names}{more}"


def check_finite(where: Path | str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse tensors holding NaN/Inf, naming the file and the keys (a merge of them would be
    NaN everywhere, or stop inside the SVD)."""
    bad = nonfinite(tensors)
    if bad:
        raise FormatError(where, describe_nonfinite(bad) + "; the file is broken (training diverged?) "
                                 "and cannot be used as an input")


def stringify_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """All values as strings (kohya's `str(v)`); dicts and lists as JSON so A1111 decodes them."""
    out: dict[str, str] = {}
    for k, v in metadata.items():
        if v is None:
            continue
        if isinstance(v, (dict, list, tuple)):
            out[str(k)] = json.dumps(v, ensure_ascii=False)
        else:
            out[str(k)] = str(v)
    return out


def _hashes_of_serialisation(blob: bytes) -> tuple[str, str]:
    n = int.from_bytes(blob[:8], "little")
    model = hashlib.sha256(memoryview(blob)[8 + n:]).hexdigest()
    legacy = hashlib.sha256(memoryview(blob)[_LEGACY_AT:_LEGACY_AT + _LEGACY_LEN]).hexdigest()[:8]
    return model, legacy


def _prepare(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, t in tensors.items():
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        t = t.contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or t.untyped_storage().nbytes() != t.numel() * t.element_size():
            t = t.clone()  # safetensors refuses tensors that share memory
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def sshs_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as kohya's precalculate_safetensors_hashes."""
    ss_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    return _hashes_of_serialisation(st_save(dict(tensors), ss_only))


def _with_hashes(tensors: dict[str, torch.Tensor], metadata: Mapping[str, Any]) -> dict[str, str]:
    meta = {k: v for k, v in stringify_metadata(metadata).items() if k not in HASH_KEYS}
    model, legacy = sshs_hashes(tensors, meta)
    meta["sshs_model_hash"] = model
    meta["sshs_legacy_hash"] = legacy
    meta["modelspec.hash_sha256"] = "0x" + model
    return meta


def write_lora(path: Path | str, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any],
               dtype: torch.dtype | None = None) -> None:
    """Write a LoRA atomically; floating tensors cast to `dtype` if given; hashes added."""
    prepared = _prepare(tensors, dtype)
    meta = _with_hashes(prepared, metadata)
    write_bytes(Path(path), st_save(prepared, meta))


def read_metadata(path: Path | str) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, reading the header only."""
    return read_header(path).metadata


def read_lora(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata); the file is checked first so problems read as one clear line."""
    header = read_header(path)
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        try:  # our own reader accepts headers safetensors is strict about (e.g. unpadded)
            tensors = {name: load_tensor(Path(path), header, name).clone() for name in header.tensors}
        except FormatError:
            raise
        except Exception:
            raise FormatError(path, f"cannot be read as safetensors: {e}") from None
    return tensors, header.metadata


def tensor_hash(path: Path | str) -> str:
    """AutoV3 / A1111 LoRA hash: SHA-256 of the data section as on disk (full hex; short = [:12])."""
    header = read_header(path)
    h = hashlib.sha256()
    for chunk in iter_data(Path(path), header.data_start):
        h.update(chunk)
    return h.hexdigest()


def autov2(path: Path | str) -> str:
    """Civitai AutoV2 / A1111 checkpoint short hash: full-file SHA-256, first 10 hex."""
    h = hashlib.sha256()
    for chunk in iter_data(Path(path), 0):
        h.update(chunk)
    return h.hexdigest()[:10]


def legacy_model_hash(path: Path | str) -> str:
    """Old A1111 / `ss_sd_model_hash` hash of a checkpoint: 64 KiB at 1 MiB, 8 hex."""
    h = hashlib.sha256()
    for chunk in iter_data(Path(path), _LEGACY_AT, _LEGACY_LEN):
        h.update(chunk)
    return h.hexdigest()[:8]


_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# values readers JSON-decode (A1111's metadata view, kohya's and Civitai's scripts): must stay JSON
_JSON_VALUES = {"ss_tag_frequency": dict, "ss_dataset_dirs": dict, "ss_bucket_info": dict,
                "ss_reg_dataset_dirs": dict, "ss_network_args": dict, "ss_datasets": list,
                "lorakiln.provenance": dict}
# values readers parse as numbers (kohya writes "Dynamic" for a dynamic resize, "None" for no clip skip)
_NUMBER_VALUES = {"ss_network_dim": ("Dynamic",), "ss_network_alpha": ("Dynamic",), "ss_clip_skip": ("None",),
                  "ss_network_dropout": ("None",)}


def check_metadata_edit(key: str, value: str | None) -> str | None:
    """Why setting `key` to `value` (None = removing it) would make a file other tools misread, or None."""
    if key in HASH_KEYS:
        return f"{key} is computed by lorakiln from the tensors and cannot be set or removed by hand"
    if value is None:
        return None  # any existing key may be removed, however it is spelled
    if not _KEY.fullmatch(key):
        return (f"bad key {key!r}: a metadata key is 1-128 ASCII letters, digits, '_', '.' or '-', starting "
                "with a letter, digit or '_' (no spaces, '=' or control characters)")
    if _CONTROL.search(value):
        return f"the value of {key} holds control characters (only tab and newline are allowed)"
    if key in _JSON_VALUES:
        kind = _JSON_VALUES[key]
        doc, why = decode(value)
        if why and "nested" in why:
            return f"the value of {key} {why}; tools decode it as JSON"
        if not isinstance(doc, kind):
            return f"{key} must be a JSON {'object' if kind is dict else 'list'}: tools decode it as one"
    if key in _NUMBER_VALUES and value not in _NUMBER_VALUES[key]:
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok:
            return f"{key} must be a number (or {' / '.join(_NUMBER_VALUES[key])}): tools read it as one"
    return None


def edit_metadata(path: Path | str, updates: Mapping[str, str | None], out: Path | str | None = None) -> dict[str, str]:
    """Set (value) or delete (None) metadata keys without touching tensor bytes; the sshs hashes
    are recomputed (the legacy one depends on the ss_* header). Returns the new metadata.
    Keys and values other tools would misread are refused (check_metadata_edit)."""
    path = Path(path)
    problems = [p for k, v in updates.items() if (p := check_metadata_edit(k, v))]
    if problems:
        raise FormatError(path, "; ".join(problems) + "; nothing was changed")
    tensors, meta = read_lora(path)
    for k, v in updates.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = str(v)
    new = _with_hashes(tensors, meta)
    rewrite_header(path, Path(out) if out else path, new)
    return new
