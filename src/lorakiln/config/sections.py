"""Registry of stage sections of project.toml: `[dedupe]` is validated by DedupeConfig, etc.

Adding a stage: define its model in config/<stage>.py with `@section("<stage>")` and add
the module to SECTION_MODULES.
"""

from __future__ import annotations

import importlib

from pydantic import BaseModel, ConfigDict, field_validator

from lorakiln.config.messages import check_numbers

SECTION_MODULES = [
    # one line per stage config module
    "lorakiln.config.importing",
    "lorakiln.config.dedupe",
    "lorakiln.config.filter",
    "lorakiln.config.crop",
    "lorakiln.config.fetch",
    "lorakiln.config.plan",
    "lorakiln.config.doctor",
    "lorakiln.config.tag",
    "lorakiln.config.caption",
    "lorakiln.config.export",
    "lorakiln.config.train",
    "lorakiln.config.eval",
    "lorakiln.config.run",
]

_SECTIONS: dict[str, type[BaseModel]] = {}
_loaded = False


class SectionModel(BaseModel):
    """Base for stage configs: unknown keys are errors, never silently dropped, and no number
    is inf, nan or beyond 64 bits (each field adds its own real range on top)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _finite_and_64_bit(cls, v):
        check_numbers(v)
        return v


def section(name: str):
    def deco(cls: type[BaseModel]) -> type[BaseModel]:
        if name in _SECTIONS and _SECTIONS[name] is not cls:
            raise KeyError(f"config section {name!r} registered twice")
        _SECTIONS[name] = cls
        return cls

    return deco


def sections() -> dict[str, type[BaseModel]]:
    global _loaded
    if not _loaded:
        for mod in SECTION_MODULES:
            importlib.import_module(mod)
        _loaded = True
    return dict(_SECTIONS)
