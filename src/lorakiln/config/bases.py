"""What may name a base model, checked when a project is created (no torch, no network).

A known preset name or alias (`animagine-xl-3.1`), a model family (`sdxl`), an existing
checkpoint file or diffusers folder, or something shaped like a hub repo id (`owner/name`).
Anything else used to be accepted by `kiln init` and fail only at `kiln plan` or `kiln train`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from lorakiln.config.presets import all_presets, find_preset
from lorakiln.core.errors import KilnError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # the shape train/families/loading.py accepts
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def known_names() -> dict[str, str]:
    """Lower-cased base name -> the preset (or family) it stands for; variant presets are not bases."""
    out: dict[str, str] = {}
    for name, doc in all_presets().items():
        meta = doc.get("preset") or {}
        if meta.get("variant_of"):
            continue
        for alias in [name, *(meta.get("aliases") or [])]:
            out[alias.lower()] = name
    for fam in families():
        out.setdefault(fam, f"family {fam}")
    return out


def families() -> set[str]:
    """Model family names (sd15, sdxl and the toy ones): a family name is a base for planning."""
    fams = {"sd15", "sdxl"}
    for doc in all_presets().values():
        fam = (doc.get("preset") or {}).get("family")
        if fam:
            fams.add(fam)
    return fams


def check_base(base: str | None, roots: tuple[Path, ...] = ()) -> None:
    """Raise a KilnError naming the known bases (with the closest first) when `base` is none of them."""
    if base is None:
        return
    text = base.strip()
    if not text:
        raise KilnError("--base is empty: give a preset name, a model file or folder, or a hub id (owner/name)")
    if text.lower() in known_names():
        return
    paths = [Path(text).expanduser()] + [r / text for r in roots if not Path(text).expanduser().is_absolute()]
    if any(p.exists() for p in paths) or find_preset(text) is not None:
        return  # a file named after a known model (animagine-xl-3.1.safetensors) gets its preset too
    if text.lower().endswith(MODEL_SUFFIXES) or text.startswith((".", "/", "~")) or "\\" in text:
        raise KilnError(f"base model file not found: {text} (looked in {', '.join(str(p) for p in paths)})")
    if HUB_ID.match(text):
        return
    raise KilnError(_unknown(text))


def _unknown(text: str) -> str:
    names = known_names()
    key = text.lower()
    inside = sorted((n for n in names if len(n) >= 4 and n in key), key=len, reverse=True)
    close = list(dict.fromkeys(inside[:2] + difflib.get_close_matches(key, sorted(names), n=3, cutoff=0.6)))[:3]
    hint = f"; did you mean {' or '.join(close)}?" if close else "."
    presets = sorted({v for v in names.values() if not v.startswith("family ")})
    return (f"unknown base model {text!r}: not a known preset or family, not an existing file or folder, and not a "
            f"hub id (owner/name){hint} Presets: {', '.join(presets)} (their aliases: `kiln presets list`); "
            f"families: {', '.join(sorted(families()))}")
