"""Single-file checkpoints that carry their own diffusers configs in the safetensors metadata.

A checkpoint in the original SD layout says nothing about its sizes; the loader normally takes
them from the family's bundled config folder (configs/sd15/...). A small model in the same
layout (the toy world's base, a distilled SD1.5) stores its component configs as JSON under
`kiln.diffusers_config` in the file's `__metadata__`; `config_folder` writes them once into a
cache folder laid out like the bundled ones, and the single-file loader uses that folder instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from lorakiln.core.errors import ConfigError

KEY = "kiln.diffusers_config"
COMPONENTS = ("unet", "vae", "text_encoder")


def metadata_entry(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The metadata item that makes a single file self-describing: {component: config dict}."""
    missing = [c for c in COMPONENTS if c not in configs]
    if missing:
        raise ValueError(f"embedded config lacks {', '.join(missing)}")
    clean = {c: {k: v for k, v in dict(configs[c]).items() if not k.startswith("_") or k == "_class_name"}
             for c in COMPONENTS}
    return {KEY: json.dumps(clean, sort_keys=True, default=list)}


def config_folder(path: Path) -> str | None:
    """A diffusers-layout config folder for a checkpoint that embeds its configs; None if it does not."""
    from lorakiln.formats.safetensors_io import FormatError, read_header

    try:
        raw = read_header(Path(path)).metadata.get(KEY)
    except FormatError:  # a pickle the caller chose to read: no metadata
        return None
    if raw is None:
        return None
    try:
        configs = json.loads(raw)
        if not all(isinstance(configs.get(c), dict) for c in COMPONENTS):
            raise ValueError(f"needs the objects {', '.join(COMPONENTS)}")
    except (ValueError, AttributeError) as e:
        raise ConfigError(path, f"has an unreadable {KEY} metadata entry: {e}") from None
    from lorakiln.train.families.clip_tokenizer import cache_root

    folder = cache_root() / "embedded-configs" / hashlib.sha256(raw.encode()).hexdigest()[:16]
    for name in COMPONENTS:
        target = folder / name / "config.json"
        if not target.is_file():
            from lorakiln.core.atomic import write_text

            target.parent.mkdir(parents=True, exist_ok=True)
            write_text(target, json.dumps(configs[name], indent=1))
    return str(folder)
