"""A base model's own resolution: a single file's `modelspec.resolution` (the toy base says 64x64)
before the family's default (SD1.5 512, SDXL 1024), for the buckets and the sampling size."""

from __future__ import annotations

import re
from pathlib import Path

from lorakiln.core.errors import KilnError

_WXH = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")


def native_resolution(family, base: str | None) -> int:
    """The side a base was trained at: its file's modelspec.resolution (64-8192, the shorter side),
    else the family's default; an unreadable header leaves the error to the loader."""
    from lorakiln.formats.lora_file import read_metadata

    path = Path(base).expanduser() if base else None
    if path is None or path.suffix.lower() != ".safetensors" or not path.is_file():
        return int(family.default_resolution)
    try:
        m = _WXH.match(read_metadata(path).get("modelspec.resolution") or "")
    except KilnError:
        return int(family.default_resolution)
    side = min(int(m.group(1)), int(m.group(2))) if m else 0
    return side if 64 <= side <= 8192 else int(family.default_resolution)
