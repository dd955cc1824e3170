"""Resolve one stage section once, at the edge: defaults < preset < project.toml < env < CLI.

Environment variables are `KILN_<SECTION>__<FIELD>` (e.g. `KILN_DEDUPE__THRESHOLD=6`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from lorakiln.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def env_overrides(section: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    prefix = f"KILN_{section.upper()}__"
    out: dict[str, Any] = {}
    for k, v in environ.items():
        if k.startswith(prefix):
            field = k[len(prefix):].lower()
            out[field] = json.loads(v) if v[:1] in "[{" else v
    return out


def deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_section(
    model: type[M],
    *,
    name: str,
    preset: Mapping | None = None,
    project: Mapping | None = None,
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    source: str = "project.toml",
) -> M:
    """Merge the layers for one section; CLI values of None mean 'not given'."""
    merged: dict[str, Any] = {}
    for layer in (preset or {}, project or {}, env_overrides(name, environ)):
        merged = deep_merge(merged, layer)
    merged = deep_merge(merged, {k: v for k, v in (cli or {}).items() if v is not None})
    try:
        return model.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(source, f"[{name}] {loc}: {err['msg']}") from None
