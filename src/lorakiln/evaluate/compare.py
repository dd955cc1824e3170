"""Runs side by side (`kiln runs compare`): what changed between iterations and what it did.

Seed 000 kept this log by hand over ten iterations: which settings changed (repeats, learning
rate, tag order), how the dataset changed (images added, tags pruned), and what the result
looked like. Here: settings that differ (config.resolved.toml), dataset differences (image
count, dataset hash, tag-share changes from ss_tag_frequency) and the eval numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

IGNORED_SETTINGS = ("train.output_name", "train.training_comment")


@dataclass
class RunSummary:
    id: str
    status: str = ""
    output_name: str = ""
    checkpoints: int = 0
    config: dict[str, Any] = field(default_factory=dict)  # flattened config.resolved.toml
    dataset_hash: str | None = None
    images: int | None = None  # training images (without repeats)
    tag_share: dict[str, float] = field(default_factory=dict)
    recommended: dict[str, Any] | None = None  # summary.json "recommended"
    metrics: dict[str, float | None] = field(default_factory=dict)  # of the recommended candidate
    findings: list[str] = field(default_factory=list)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def settings_diff(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Keys whose value is not the same in every run (a missing key reads as None)."""
    keys = sorted({k for c in configs for k in c} - set(IGNORED_SETTINGS))
    return {k: [c.get(k) for c in configs] for k in keys if len({repr(c.get(k)) for c in configs}) > 1}


def tag_changes(before: Mapping[str, float], after: Mapping[str, float], min_delta: float = 0.1,
                top: int = 12) -> dict[str, list]:
    """Tags that appeared, disappeared or changed share by at least `min_delta` between two datasets."""
    added = sorted(((t, s) for t, s in after.items() if t not in before and s >= min_delta), key=lambda x: -x[1])
    removed = sorted(((t, s) for t, s in before.items() if t not in after and s >= min_delta), key=lambda x: -x[1])
    changed = sorted(((t, before[t], after[t]) for t in before.keys() & after.keys()
                      if abs(after[t] - before[t]) >= min_delta), key=lambda x: -abs(x[2] - x[1]))
    return {"added": [[t, round(s, 3)] for t, s in added[:top]],
            "removed": [[t, round(s, 3)] for t, s in removed[:top]],
            "changed": [[t, round(a, 3), round(b, 3)] for t, a, b in changed[:top]]}


def compare(runs: list[RunSummary]) -> dict[str, Any]:
    """A JSON-ready comparison, runs in the order given (oldest first)."""
    datasets = []
    for i, r in enumerate(runs):
        entry: dict[str, Any] = {"run": r.id, "hash": r.dataset_hash, "images": r.images}
        if i > 0:
            prev = runs[i - 1]
            entry["same_as_previous"] = bool(r.dataset_hash) and r.dataset_hash == prev.dataset_hash
            entry["tags_vs_previous"] = tag_changes(prev.tag_share, r.tag_share)
        datasets.append(entry)
    metric_names = sorted({m for r in runs for m in r.metrics})
    return {
        "runs": [{"id": r.id, "status": r.status, "output_name": r.output_name, "checkpoints": r.checkpoints}
                 for r in runs],
        "settings": settings_diff([r.config for r in runs]),
        "dataset": datasets,
        "eval": [{"run": r.id, "recommended": r.recommended,
                  "metrics": {m: r.metrics.get(m) for m in metric_names}, "findings": r.findings} for r in runs],
    }
