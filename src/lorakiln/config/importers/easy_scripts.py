"""LoRA Easy Training Scripts TOML (derrian-distro): [[subsets]] and [<group>.args] /
[<group>.dataset_args] tables holding sd-scripts option names (reference/trainers.md 5.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.importers.apply import apply_key, empty, merge_dict
from lorakiln.config.importers.mapping import NET, OPT
from lorakiln.config.importers.report import Entry, ImportReport
from lorakiln.config.importers.subsets import SubsetImport

GROUPS = ("general_args", "network_args", "optimizer_args", "saving_args", "bucket_args", "noise_args",
          "sample_args", "logging_args")
_NETWORK_KEYS = {"conv_dim", "conv_alpha", "algo", "dora_wd", "rank_dropout", "module_dropout", "factor"}


def parse(doc: Mapping[str, Any], path: Path) -> ImportReport:
    report = ImportReport("LoRA Easy Training Scripts TOML", str(path))
    for key, value in doc.items():
        if key == "subsets" and isinstance(value, list):
            subsets = SubsetImport(report)
            subsets.add(value, "subsets")
            subsets.finish()
        elif isinstance(value, Mapping):
            _walk(report, value, key)
        else:
            apply_key(report, key, value, key, doc)
    return report


def _walk(report: ImportReport, table: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        here = f"{where}.{key}"
        if here == "network_args.args.network_args":
            _network_args(report, value, here)
        elif here == "optimizer_args.args.optimizer_args":
            _optimizer_args(report, value, here)
        elif here == "optimizer_args.args.lr_scheduler_args":
            apply_key(report, "lr_scheduler_args", value, here, table)
        elif isinstance(value, Mapping):
            _walk(report, value, here)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            report.unknown(here)
        else:
            apply_key(report, key, value, here, table)


def _network_args(report: ImportReport, table: Mapping[str, Any], where: str) -> None:
    """[network_args.args.network_args]: LyCORIS/LoCon options; the rest passes to the adapter."""
    if "conv_dim" in table and "algo" not in table:
        report.map(f"{where}.conv_dim", (*NET, "algo"), "locon", "conv_dim without algo: kohya's LoCon")
    for k, v in table.items():
        if k in _NETWORK_KEYS:
            apply_key(report, k, v, f"{where}.{k}", table)
        elif not empty(v):
            merge_dict(report, f"{where}.{k}", (*NET, "network_args"), {k: v})
        else:
            report.ignore(f"{where}.{k}", "empty")


def _optimizer_args(report: ImportReport, table: Mapping[str, Any], where: str) -> None:
    """[optimizer_args.args.optimizer_args] -> kohya's "key=value key=value" string."""
    parts = []
    for k, v in table.items():
        if empty(v):
            report.ignore(f"{where}.{k}", "empty")
            continue
        text = ",".join(str(x) for x in v) if isinstance(v, list) else str(v)
        parts.append(f"{k}={text.replace(' ', '')}")
    if parts:
        value = " ".join(parts)
        for k in table:
            if not empty(table[k]):
                report.entries.append(Entry(f"{where}.{k}", "mapped", "train.optimizer.optimizer_args", value))
        report.values[(*OPT, "optimizer_args")] = value


def detect(path: Path, doc: Mapping[str, Any]) -> bool:
    return any(g in doc for g in GROUPS) or ("subsets" in doc and "datasets" not in doc)
