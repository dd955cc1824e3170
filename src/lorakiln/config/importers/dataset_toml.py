"""kohya dataset config TOML: [general], [[datasets]] and [[datasets.subsets]]
(reference/trainers.md 1.3). Subsets become [export].repeats and, where their options differ,
[train.data.subsets.<name>] (importers/subsets.py); dataset options [train.*]."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.importers.apply import apply_key
from lorakiln.config.importers.report import ImportReport
from lorakiln.config.importers.subsets import SubsetImport, per_subset_field


def parse(doc: Mapping[str, Any], path: Path) -> ImportReport:
    report = ImportReport("kohya dataset TOML", str(path))
    subsets = SubsetImport(report)
    general = doc.get("general") if isinstance(doc.get("general"), Mapping) else {}
    datasets = doc.get("datasets") if isinstance(doc.get("datasets"), list) else []
    for key, value in doc.items():
        if key == "general" and value is general:
            for k, v in value.items():
                if k != "num_repeats":  # every subset's default: read with the subsets
                    apply_key(report, k, v, f"general.{k}", value)
        elif key == "datasets" and value is datasets:
            if len(datasets) > 1:
                report.notes.append(f"{len(datasets)} datasets: lorakiln trains one; their settings were merged "
                                    "(a later dataset's value wins) and all subsets kept, each with its "
                                    "dataset's caption and augmentation options")
            for i, ds in enumerate(datasets):
                _dataset(report, subsets, ds, f"datasets[{i}]", general, several=len(datasets) > 1)
        else:
            report.unknown(key)
    subsets.finish()
    report.notes.append(f"to train straight from this file instead, set [train.data].dataset_config = {str(path)!r}")
    return report


def _dataset(report: ImportReport, subsets: SubsetImport, ds: Any, where: str, general: Mapping[str, Any],
             several: bool) -> None:
    """A dataset's own options: bucket and batch options apply to the run; with several datasets a
    caption/augmentation option stays with the dataset's subsets instead of becoming global."""
    if not isinstance(ds, Mapping):
        return report.ignore(where, "not a table")
    inherited = {"num_repeats": ("general.num_repeats", general["num_repeats"])} if "num_repeats" in general else {}
    for k, v in ds.items():
        if k == "subsets":
            continue
        if k == "num_repeats" or (several and per_subset_field(k) is not None):
            inherited[k] = (f"{where}.{k}", v)
        else:
            apply_key(report, k, v, f"{where}.{k}", ds)
    if isinstance(ds.get("subsets"), list):
        subsets.add(ds["subsets"], f"{where}.subsets", inherited)
    elif "subsets" in ds:
        report.ignore(f"{where}.subsets", "not a list of [[datasets.subsets]] tables")


def detect(path: Path, doc: Mapping[str, Any]) -> bool:
    return "datasets" in doc or "general" in doc
