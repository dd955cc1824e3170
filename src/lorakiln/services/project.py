"""A project folder: project.toml, manifest.jsonl, images/, dataset/, runs/, cache/."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import tomlkit
from pydantic import BaseModel

from lorakiln.config.bases import check_base
from lorakiln.config.presets import find_preset
from lorakiln.config.project import (
    ProjectInfo,
    new_document,
    read_toml,
    validate_document,
    write_document,
)
from lorakiln.config.resolve import resolve_section
from lorakiln.config.sections import sections
from lorakiln.core.errors import KilnError, ProjectNotFound
from lorakiln.core.manifest import Manifest

M = TypeVar("M", bound=BaseModel)
PROJECT_FILE = "project.toml"


@dataclass
class Project:
    root: Path
    info: ProjectInfo
    doc: tomlkit.TOMLDocument = field(repr=False)

    # -- locations ------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    def manifest(self) -> Manifest:
        return Manifest.load(self.manifest_path)

    def rel(self, path: Path) -> str:
        """A path relative to the project root, as stored in the manifest."""
        return Path(os.path.relpath(Path(path).resolve(), self.root.resolve())).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel

    # -- configuration ----------------------------------------------------------
    def section_doc(self, name: str) -> dict[str, Any]:
        value = self.doc.get(name)
        return value.unwrap() if value is not None else {}

    def preset(self) -> dict:
        return find_preset(self.info.base) or {}

    def resolve(self, name: str, cli: Mapping[str, Any] | None = None, model: type[M] | None = None) -> M:
        """The typed section `name`: defaults < preset < project.toml < env < CLI flags."""
        model = model or sections()[name]
        return resolve_section(
            model,
            name=name,
            preset=self.preset().get(name),
            project=self.section_doc(name),
            cli=cli,
            source=str(self.config_path),
        )

    def get_value(self, path: tuple[str, ...]) -> Any:
        """The raw value at a dotted path of project.toml, or None when it is not set there."""
        node: Any = self.doc
        for key in path:
            if not hasattr(node, "get") or key not in node:
                return None
            node = node[key]
        return node.unwrap() if hasattr(node, "unwrap") else node

    def set_values(self, values: Mapping[tuple[str, ...], Any]) -> None:
        """Set each dotted path's value in project.toml (other keys and comments are kept).

        Tables are created as needed; a dict value is written whole (an inline table such as
        repeats = {main = 10}); the value REMOVE deletes the key (and its table once empty).
        Starts from the file as it is now on disk, so a newer edit is never overwritten, and
        works on a copy: if the result does not validate, neither the file nor `self.doc` change."""
        doc = read_toml(self.config_path) if self.config_path.exists() else tomlkit.parse(tomlkit.dumps(self.doc))
        for path, value in values.items():
            if value is REMOVE:
                _remove(doc, path)
                continue
            table = doc
            for key in path[:-1]:
                if key not in table:
                    table[key] = tomlkit.table()
                table = table[key]
            table[path[-1]] = _toml_item(value)
        validate_document(doc.unwrap(), self.config_path)
        write_document(self.config_path, doc)
        self.doc = doc

    def set_section(self, name: str, values: Mapping[str, Any]) -> None:
        """Set keys of the [name] table of project.toml."""
        self.set_values({(name, k): v for k, v in values.items()})


REMOVE = object()  # a set_values value: delete the key


def _remove(doc, path: tuple[str, ...]) -> None:
    tables = [doc]
    for key in path[:-1]:
        if key not in tables[-1]:
            return
        tables.append(tables[-1][key])
    tables[-1].pop(path[-1], None)
    for key, table, parent in zip(reversed(path[:-1]), reversed(tables[1:]), reversed(tables[:-1])):
        if not table:
            del parent[key]


def _toml_item(value: Any):
    if isinstance(value, Mapping):
        t = tomlkit.inline_table()
        t.update(dict(value))
        return t
    return value


def init_project(root: Path, name: str, trigger: list[str] | str, base: str | None = None,
                 character: str | None = None) -> Project:
    root = Path(root)
    if (root / PROJECT_FILE).exists():
        raise KilnError(f"{root / PROJECT_FILE} already exists; not overwriting it")
    check_base(base, (root,))  # an unknown base would fail only at plan or train
    info = ProjectInfo(name=name, trigger=trigger, base=base, character=character)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "dataset", "runs", "cache"):
        (root / sub).mkdir(exist_ok=True)
    doc = new_document(info)
    write_document(root / PROJECT_FILE, doc)
    (root / "manifest.jsonl").touch()
    return open_project(root)


def find_root(start: Path | None = None) -> Path:
    """The folder given, or the current folder or its nearest parent holding project.toml."""
    if start is not None:
        start = Path(start)
        if not (start / PROJECT_FILE).exists():
            raise ProjectNotFound(start)
        return start
    here = Path.cwd()
    for p in (here, *here.parents):
        if (p / PROJECT_FILE).exists():
            return p
    raise ProjectNotFound(here)


def open_project(where: Path | None = None) -> Project:
    root = find_root(where)
    doc = read_toml(root / PROJECT_FILE)
    info, _ = validate_document(doc.unwrap(), root / PROJECT_FILE)
    return Project(root=root, info=info, doc=doc)
