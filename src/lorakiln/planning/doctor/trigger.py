"""Captions that do not contain the trigger word: those images teach the base model's own tags
instead of the trigger (seed 003: the main tag goes first in every caption).

In a project every kept image gets a caption on export, built from its tags until one is edited,
so doctor checks the caption export writes, not only edited ones (as `kiln export` warns)."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, norm_tag


@RULES.register("trigger")
def trigger(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    words = {norm_tag(t) for t in ds.trigger}
    captioned = [it for it in ds.items if it.captioned or ds.exports_captions]
    if not words:
        return [Finding("trigger", "warning", "the project has no trigger word", [],
                        "set [project].trigger in project.toml")]
    if not captioned:
        return [Finding("trigger", "info", "no captions yet: doctor read the booru/tagger tags",
                        [], "build the captions: `kiln caption trigger` puts the trigger first in every caption")]
    missing = [it for it in captioned if it.tags.isdisjoint(words)]
    if not missing:
        return []
    from_tags = sum(not it.captioned for it in missing)
    built = f" ({from_tags} not edited yet: export writes their tags as they are)" if from_tags else ""
    return [Finding(
        "trigger", "warning",
        f"{len(missing)} of {len(captioned)} captions lack the trigger ({', '.join(sorted(words))}){built}",
        [it.id for it in missing], "`kiln caption trigger` adds it first to every caption",
        {"missing": len(missing), "captioned": len(captioned), "from_tags": from_tags})]
