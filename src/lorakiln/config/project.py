"""The project.toml root: schema version, project identity, and one table per stage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lorakiln.config.messages import describe, did_you_mean
from lorakiln.config.sections import sections
from lorakiln.config.tomlfile import load_toml
from lorakiln.core.atomic import write_text
from lorakiln.core.errors import ConfigError

SCHEMA_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class ProjectInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Project (and default output) name.")
    trigger: list[str] = Field(description="Trigger word(s) put first in every caption.")
    base: str | None = Field(None, description="Base model: preset name, file, folder or hub id.")
    character: str | None = Field(None, description="The character's booru tag, if it has one.")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("use letters, digits, '_', '-' or '.' (no spaces or slashes)")
        return v

    @field_validator("trigger", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",")]
        if not v or not all(isinstance(t, str) and t.strip() for t in v):
            raise ValueError("give at least one non-empty trigger word")
        return [t.strip() for t in v]


# migrations[n] upgrades a schema n document to n+1 (plain dicts, so old files stay readable)
MIGRATIONS: dict[int, Any] = {}


def migrate(doc: dict, path: Path) -> dict:
    v = doc.get("schema_version")
    if not isinstance(v, int) or isinstance(v, bool):
        raise ConfigError(path, "missing or non-integer schema_version")
    if v < 1 or (v < SCHEMA_VERSION and v not in MIGRATIONS):
        raise ConfigError(path, f"schema_version {v} is not a version lorakiln ever wrote (this one writes {SCHEMA_VERSION})")
    if v > SCHEMA_VERSION:
        raise ConfigError(path, f"schema_version {v} is newer than this lorakiln ({SCHEMA_VERSION}); upgrade lorakiln")
    while v < SCHEMA_VERSION:
        doc = MIGRATIONS[v](doc)
        v += 1
        doc["schema_version"] = v
    return doc


def read_toml(path: Path) -> tomlkit.TOMLDocument:
    """project.toml as a tomlkit document; unreadable, non-UTF-8 or malformed files say where."""
    return load_toml(path)


def validate_document(doc: dict, path: Path) -> tuple[ProjectInfo, dict[str, BaseModel]]:
    """Check the whole file: the project table and every stage table against its model."""
    doc = migrate(dict(doc), path)
    known = sections()
    try:
        info = ProjectInfo.model_validate(doc.get("project") or {})
    except ValidationError as e:
        raise ConfigError(path, f"[project] {describe(e, ProjectInfo)}") from None
    parsed: dict[str, BaseModel] = {}
    for key, value in doc.items():
        if key in ("schema_version", "project"):
            continue
        if key not in known:
            hint = did_you_mean(key, known)
            raise ConfigError(path, f"unknown table [{key}]{hint}; known: {', '.join(sorted(known)) or 'none'}")
        try:
            parsed[key] = known[key].model_validate(_plain(value))
        except ValidationError as e:
            raise ConfigError(path, f"[{key}] {describe(e, known[key], key)}") from None
    return info, parsed


def new_document(info: ProjectInfo) -> tomlkit.TOMLDocument:
    doc = tomlkit.document()
    doc.add(tomlkit.comment("lorakiln project; `kiln --help` lists the stages and their options"))
    doc["schema_version"] = SCHEMA_VERSION
    proj = tomlkit.table()
    for k, v in info.model_dump(exclude_none=True).items():
        proj[k] = v
    doc["project"] = proj
    return doc


def write_document(path: Path, doc: tomlkit.TOMLDocument) -> None:
    write_text(path, tomlkit.dumps(doc))


def _plain(value):
    return value.unwrap() if hasattr(value, "unwrap") else value


