"""Captions that do not contain the trigger word: those images teach the base model's own tags
instead of the trigger (seed 003: the main tag goes first in every caption)."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, norm_tag


@RULES.register("trigger")
def trigger(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    words = {norm_tag(t) for t in ds.trigger}
    captioned = [it for it in ds.items if it.captioned]
    if not words:
        return [Finding("trigger", "warning", "the project has no trigger word", [],
                        "set [project].trigger in project.toml")]
    if not captioned:
        return [Finding("trigger", "info", "no captions yet: doctor read the booru/tagger tags",
                        [], "build the captions: `kiln caption trigger` puts the trigger first in every caption")]
    missing = [it.id for it in captioned if it.tags.isdisjoint(words)]
    if not missing:
        return []
    return [Finding(
        "trigger", "warning",
        f"{len(missing)} of {len(captioned)} captions lack the trigger ({', '.join(sorted(words))})",
        missing, "`kiln caption trigger` adds it first to every caption",
        {"missing": len(missing), "captioned": len(captioned)})]
