"""`kiln doctor`: dataset checks from the seeds' rules of thumb; one rule per file, in RULES."""

from __future__ import annotations

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor import (  # noqa: F401  (registration)
    absorbed, duplicates, headshots, identity, resolution, style, toggles, trigger, views)
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, Item, norm_tag

__all__ = ["RULES", "Dataset", "Finding", "Item", "norm_tag", "run_rules", "rule_doc"]


def run_rules(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    """Every selected rule on the dataset, warnings first; an empty dataset is one finding."""
    if not ds.items:
        return [Finding("dataset", "warning", "no kept images to check", [],
                        "`kiln fetch` or `kiln import` images first; `kiln status` shows the funnel")]
    names = cfg.rules if cfg.rules is not None else RULES.names()
    for name in names:
        RULES.get(name)  # unknown names fail clearly
    found = [f for name in names if name not in cfg.skip for f in RULES.get(name)(ds, cfg)]
    return sorted(found, key=lambda f: f.severity != "warning")


def rule_doc(name: str) -> str:
    """The first line of a rule's module docstring: what it checks and the seed behind it."""
    import sys

    mod = sys.modules[RULES.get(name).__module__]
    return " ".join((mod.__doc__ or "").split())
