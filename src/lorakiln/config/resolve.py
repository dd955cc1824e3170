"""Resolve one stage section once, at the edge: defaults < preset < project.toml < env < CLI.

Environment variables are `KILN_<SECTION>__<FIELD>` (e.g. `KILN_DEDUPE__THRESHOLD=6`), with `__`
between nested keys (`KILN_TRAIN__OPTIMIZER__LEARNING_RATE=2e-4`); config/environment.py lists
every other KILN_* variable and reports misspelled ones.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from lorakiln.config.environment import check_environment
from lorakiln.config.messages import best_error, describe_error
from lorakiln.config.sections import sections
from lorakiln.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def env_overrides(section: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`KILN_<SECTION>__<FIELD>[__<SUBFIELD>...]` variables as a nested dict of this section's values.

    A value starting with [ or { is read as JSON (lists and tables); anything else is a string
    the section model converts (numbers, true/false)."""
    return _env_layer(section, environ)


def _env_layer(section: str, environ: Mapping[str, str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for var, (path, value) in env_variables(section, environ).items():
        node = out
        for key in path[:-1]:
            nxt = node.get(key)
            if not isinstance(nxt, dict):
                nxt = node[key] = {}
            node = nxt
        node[path[-1]] = value
    return out


def env_variables(section: str, environ: Mapping[str, str] | None = None) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Variable name -> (key path inside the section, value) for this section's variables."""
    environ = os.environ if environ is None else environ
    prefix = f"KILN_{section.upper()}__"
    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    for k, v in sorted(environ.items()):
        if not k.startswith(prefix):
            continue
        path = tuple(p.lower() for p in k[len(prefix):].split("__"))
        if not all(path):
            raise ConfigError(f"environment variable {k}", "use KILN_<SECTION>__<KEY>, with __ between nested keys")
        out[k] = (path, _env_value(k, v))
    return out


def _env_value(var: str, text: str) -> Any:
    if not text.strip().startswith(("[", "{")):
        return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"environment variable {var}", f"not valid JSON ({e}); lists and tables are "
                          "written as JSON, e.g. '[\"a\", \"b\"]'") from None


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
    """Merge the layers for one section; CLI values of None mean 'not given'.

    An invalid value is blamed on the layer it came from: the command line, the KILN_*
    variable (named), `source` (project.toml) or the preset. A KILN_* variable meant for kiln
    but read by nothing (a misspelled section, one underscore where two belong) is an error here, so
    every command that reads a setting reports it before doing anything."""
    check_environment({*sections(), name}, environ)
    env = env_variables(name, environ)
    cli_values = {k: v for k, v in (cli or {}).items() if v is not None}
    merged: dict[str, Any] = {}
    for layer in (preset or {}, project or {}, _env_layer(name, environ), cli_values):
        merged = deep_merge(merged, layer)
    try:
        return model.model_validate(merged)
    except ValidationError as e:
        err = best_error(e)
        where = _blame(tuple(str(p) for p in err["loc"]), cli_values, env, project or {}, preset or {}, source)
        raise ConfigError(where, f"[{name}] {describe_error(err, model, name)}{_env_hint(err, where)}") from None


def _blame(loc: tuple[str, ...], cli: Mapping, env: dict, project: Mapping, preset: Mapping, source: str) -> str:
    """Which layer set the value at `loc` last (the one that won the merge)."""
    if not loc:  # a check across several keys: name the layers that set any
        layers = [w for w, on in (("command line", cli), (source, project)) if on] + [
            f"environment variable {v}" for v in env]
        return " / ".join(layers) or source
    if _sets(cli, loc):
        return "command line"
    for var, (path, _) in sorted(env.items(), key=lambda kv: -len(kv[1][0])):
        if loc[:len(path)] == path or path[:len(loc)] == loc:
            return f"environment variable {var}"
    if _sets(project, loc) or not _sets(preset, loc):
        return source
    return "the preset"


def _sets(layer: Any, loc: tuple[str, ...]) -> bool:
    """Whether `layer` gives the value at `loc` or at one of its parents."""
    node: Any = layer
    for key in loc:
        if isinstance(node, Mapping):
            if key not in node:
                return False
            node = node[key]
        elif isinstance(node, list) and key.isdigit():
            if int(key) >= len(node):
                return False
            node = node[int(key)]
        else:
            return True  # a value set whole (a union's branch name or a scalar's inner error)
    return True


def _env_hint(err: dict, where: str) -> str:
    if where.startswith("environment variable") and err.get("type") in ("list_type", "dict_type", "tuple_type"):
        return " (write lists and tables as JSON, e.g. '[\"a\", \"b\"]')"
    return ""
