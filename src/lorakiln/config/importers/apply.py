"""Apply the kohya key table to one table of a config file, and read kohya subsets."""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, Mapping

from lorakiln.config.importers.mapping import KOHYA, Skip, to_int
from lorakiln.config.importers.report import Entry, ImportReport, is_secret

_N_NAME = re.compile(r"^(\d+)_(.+)$")


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def apply_table(report: ImportReport, table: Mapping[str, Any], prefix: str = "",
                src: Mapping[str, Any] | None = None) -> None:
    """Each scalar key of `table` through KOHYA; nested tables are the caller's business."""
    for key, value in table.items():
        apply_key(report, key, value, f"{prefix}{key}", src if src is not None else table)


def apply_key(report: ImportReport, key: str, value: Any, source: str, src: Mapping[str, Any]) -> None:
    rule = KOHYA.get(key)
    if is_secret(key):
        return report.ignore(source, "secret: never imported")
    if rule is None:
        return report.unknown(source)
    if not rule.targets:
        return report.ignore(source, rule.reason)
    if empty(value):
        return report.ignore(source, "empty")
    try:
        v = rule.convert(value, src) if rule.convert else value
    except Skip as e:
        return report.ignore(source, str(e))
    except (TypeError, ValueError):
        return report.ignore(source, f"cannot read {value!r}")
    for target in rule.targets:
        if target[-1] == "network_args" and isinstance(v, dict):
            merge_dict(report, source, target, v)
        else:
            report.map(source, target, v)


def merge_dict(report: ImportReport, source: str, target: tuple[str, ...], value: dict) -> None:
    """Values that are small tables (network_args, repeats) collect keys from several sources."""
    merged = {**(report.values.get(target) or {}), **value}
    report.values[target] = merged
    for k, v in value.items():
        report.entries.append(Entry(source, "mapped", f"{'.'.join(target)}.{k}", v))


def subset_name(subset: Mapping[str, Any], index: int) -> str:
    """A subset's name: its folder (without the kohya N_ prefix), else its label."""
    folder = subset.get("image_dir")
    if isinstance(folder, str) and folder.strip():
        name = PurePath(folder.replace("\\", "/")).name
        m = _N_NAME.match(name)
        return m.group(2) if m else name
    label = subset.get("name")
    return str(label) if label else f"subset{index + 1}"


def apply_subsets(report: ImportReport, subsets: list, prefix: str) -> None:
    """kohya subsets: num_repeats -> [export].repeats by subset name; caption options -> [train.data]."""
    repeats: dict[str, int] = dict(report.values.get(("export", "repeats")) or {})
    for i, s in enumerate(subsets):
        where = f"{prefix}[{i}]."
        if not isinstance(s, Mapping):
            report.ignore(f"{prefix}[{i}]", "not a table")
            continue
        if s.get("is_reg"):
            for key in s:
                report.ignore(where + key, "regularisation subset: set [train.data].reg_data_dir to its folder")
            continue
        name = subset_name(s, i)
        for key, value in s.items():
            if key == "num_repeats":
                _repeats(report, where + key, name, value, repeats)
            elif key in ("image_dir", "name"):
                report.ignore(where + key, f"names the subset {name!r}; import its images with `kiln import`")
            elif key in ("is_reg", "class_tokens", "metadata_file"):
                report.ignore(where + key, "captions come from the project (class tokens: [caption].class_tokens)")
            else:
                apply_key(report, key, value, where + key, s)
        if "num_repeats" not in s:
            repeats.setdefault(name, 1)
            report.notes.append(f"subset {name!r} has no num_repeats: 1, as kohya does with a dataset config")
    if repeats:
        report.values[("export", "repeats")] = repeats


def _repeats(report: ImportReport, source: str, name: str, value: Any, repeats: dict[str, int]) -> None:
    try:
        n = to_int(value)
    except (Skip, TypeError, ValueError):
        return report.ignore(source, f"cannot read {value!r}")
    if name in repeats and repeats[name] != n:
        report.notes.append(f"two subsets are named {name!r}: repeats {n} replaces {repeats[name]}")
    repeats[name] = n
    report.entries.append(Entry(source, "mapped", f"export.repeats.{name}", n))
