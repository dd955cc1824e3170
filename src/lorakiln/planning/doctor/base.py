"""What doctor rules see (a light view of the kept images) and what they report (findings).

A rule is a small pure function `rule(dataset, cfg) -> list[Finding]` registered in RULES.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Literal

from lorakiln.config.doctor import DoctorConfig
from lorakiln.core.registry import Registry
from lorakiln.planning.explain import pct  # noqa: F401  (rules import it from here)

Severity = Literal["warning", "info"]


def norm_tag(tag: str) -> str:
    """Compare tags however captions write them: 'Kafka \\(HSR\\)' == 'kafka_(hsr)'."""
    return tag.strip().replace("\\(", "(").replace("\\)", ")").lower().replace(" ", "_")


@dataclass(frozen=True)
class Item:
    id: str
    tags: frozenset[str]  # normalised (norm_tag)
    subset: str = "main"
    repeats: int = 1
    width: int | None = None
    height: int | None = None
    captioned: bool = False  # tags come from record.caption (else from booru/tagger tags)
    artists: tuple[str, ...] = ()
    phash: str | None = None
    sha256: str | None = None
    identity: tuple[float, float] | None = None  # (CCIP difference from the main character, threshold)

    def has_any(self, tags) -> bool:
        return not self.tags.isdisjoint(tags)


@dataclass
class Dataset:
    items: list[Item]
    trigger: list[str] = field(default_factory=list)
    resolution: tuple[int, int] | None = None  # training resolution; None = unknown
    # the repeats project.toml holds now, when they differ from the items' (planned) repeats
    written_repeats: dict[str, int] | None = None
    weights: dict[str, float] = field(default_factory=dict)  # [plan].weights the plan used
    # a project: `kiln export` writes a caption for every item, from its tags where nobody edited
    # one yet, so every item's tags are its caption (in a plain folder only a .txt is a caption)
    exports_captions: bool = False

    @cached_property
    def tag_counts(self) -> Counter:
        return Counter(t for it in self.items for t in it.tags)

    @property
    def weight(self) -> int:
        """Images x repeats: how many images an epoch shows."""
        return sum(it.repeats for it in self.items)

    def share(self, items) -> float:
        """The share of an epoch (images x repeats) these items make."""
        return sum(it.repeats for it in items) / self.weight if self.items else 0.0

    def with_any(self, tags) -> list[Item]:
        tags = {norm_tag(t) for t in tags}
        return [it for it in self.items if it.has_any(tags)]


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    items: list[str] = field(default_factory=list)  # image ids concerned
    fix: str = ""  # what to do, with the kiln command where there is one
    data: dict = field(default_factory=dict)  # the numbers behind the message

    def as_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "message": self.message,
                "items": self.items, "fix": self.fix, "data": self.data}


Rule = Callable[[Dataset, DoctorConfig], list[Finding]]
RULES: Registry[Rule] = Registry("doctor rule")

