"""Presets per base model: bundled TOML files in lorakiln/presets/, shaped like project.toml.

A preset file has a `[preset]` table (name, aliases, description) and stage tables
(`[train]`, `[caption]`, ...) that sit between code defaults and the user's project.toml.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tomlkit

from lorakiln.core.errors import ConfigError, KilnError


@lru_cache(maxsize=1)
def all_presets() -> dict[str, dict]:
    out: dict[str, dict] = {}
    folder = resources.files("lorakiln") / "presets"
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".toml"):
            continue
        try:
            doc = tomlkit.parse(entry.read_text(encoding="utf-8")).unwrap()
        except tomlkit.exceptions.ParseError as e:
            raise ConfigError(Path(str(entry)), f"preset is not valid TOML: {e}") from None
        meta = doc.get("preset") or {}
        name = meta.get("name") or entry.name[: -len(".toml")]
        out[name] = doc
    return out


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def _aliases(name: str, doc: dict) -> set[str]:
    return {_norm(a) for a in [name, *(doc.get("preset", {}).get("aliases") or [])]}


def find_preset(base: str | None, *, variants: bool = False) -> dict | None:
    """The preset for a base-model name, alias, or file name containing an alias; None if none.

    Variants (presets with `variant_of`, e.g. a Prodigy or DoRA flavour) are never chosen from a
    base name; they are applied by name only (`variants=True`)."""
    if not base:
        return None
    presets = {n: d for n, d in all_presets().items() if variants or not d.get("preset", {}).get("variant_of")}
    key = _norm(Path(base).stem if "/" in base or base.endswith((".safetensors", ".ckpt")) else base)
    for name, doc in presets.items():
        if key in _aliases(name, doc):
            return doc
    if variants:
        return None
    for name, doc in presets.items():  # file names such as animagine-xl-3.1.safetensors
        if any(len(a) >= 5 and a in key for a in _aliases(name, doc)):
            return doc
    return None


def hub_repo_for(base: str) -> str | None:
    """The hub repo a preset lists for this base name (`animagine-xl-3.1` ->
    `cagliostrolab/animagine-xl-3.1`), or None."""
    doc = find_preset(base)
    for alias in (doc or {}).get("preset", {}).get("aliases") or []:
        if "/" in alias and _norm(alias.split("/", 1)[1]) == _norm(base):
            return alias
    return None


def get_preset(name: str) -> dict:
    doc = find_preset(name, variants=True) or find_preset(name)  # a name, else a base model's file name
    if doc is None:
        raise KilnError(f"unknown preset {name!r}; known: {', '.join(sorted(all_presets())) or 'none'}")
    return doc
