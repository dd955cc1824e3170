"""`kiln config show`: every resolved value of a section with the layer it came from."""

from __future__ import annotations

from typing import Any, Mapping

from lorakiln.config.resolve import env_overrides
from lorakiln.config.sections import sections
from lorakiln.core.errors import KilnError
from lorakiln.services.project import Project


def leaves(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(node, Mapping) and node:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in node.items():
            out.update(leaves(v, (*prefix, str(k))))
        return out
    return {prefix: node}


def _covers(layer: dict[tuple[str, ...], Any], path: tuple[str, ...]) -> bool:
    """A layer sets `path` if it has the path or one of its parents (a whole table or dict value)."""
    return any(path[:i] in layer for i in range(1, len(path) + 1))


def show_section(project: Project, name: str) -> list[tuple[str, Any, str]]:
    """(dotted key, resolved value, source) for every field of one section."""
    if name not in sections():
        raise KilnError(f"unknown section [{name}]; known: {', '.join(sorted(sections()))}")
    resolved = project.resolve(name).model_dump(mode="json")
    layers = {
        "preset": leaves(project.preset().get(name) or {}),
        "project.toml": leaves(project.section_doc(name)),
        "env": leaves(env_overrides(name)),
    }
    rows = []
    for path, value in leaves(resolved).items():
        source = "default"
        for layer in ("preset", "project.toml", "env"):
            if _covers(layers[layer], path):
                source = layer
        rows.append((".".join(path), value, source))
    return rows


def show(project: Project, name: str | None = None) -> dict[str, list[tuple[str, Any, str]]]:
    names = [name] if name else sorted(sections())
    return {n: show_section(project, n) for n in names}
