"""kohya dataset config TOML: [general], [[datasets]] and [[datasets.subsets]]
(reference/trainers.md 1.3). Subsets become [export].repeats; dataset options [train.*]."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.importers.apply import apply_key, apply_subsets
from lorakiln.config.importers.report import ImportReport


def parse(doc: Mapping[str, Any], path: Path) -> ImportReport:
    report = ImportReport("kohya dataset TOML", str(path))
    for key, value in doc.items():
        if key == "general" and isinstance(value, Mapping):
            for k, v in value.items():
                apply_key(report, k, v, f"general.{k}", value)
        elif key == "datasets" and isinstance(value, list):
            if len(value) > 1:
                report.notes.append(f"{len(value)} datasets: lorakiln trains one; their settings were merged "
                                    "(a later dataset's value wins) and all subsets kept")
            for i, ds in enumerate(value):
                _dataset(report, ds, f"datasets[{i}]")
        else:
            report.unknown(key)
    report.notes.append(f"to train straight from this file instead, set [train.data].dataset_config = {str(path)!r}")
    return report


def _dataset(report: ImportReport, ds: Mapping[str, Any], where: str) -> None:
    for k, v in ds.items():
        if k == "subsets" and isinstance(v, list):
            apply_subsets(report, v, f"{where}.subsets")
        else:
            apply_key(report, k, v, f"{where}.{k}", ds)


def detect(path: Path, doc: Mapping[str, Any]) -> bool:
    return "datasets" in doc or "general" in doc
