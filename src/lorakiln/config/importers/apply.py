"""Apply the kohya key table to one table of a config file (kohya subsets: importers/subsets.py)."""

from __future__ import annotations

from typing import Any, Mapping

from lorakiln.config.importers.mapping import KOHYA, SCHEDULER_ARGS, Rule, Skip, key_values, short, to_bool
from lorakiln.config.importers.report import Entry, ImportReport, is_secret


def empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def apply_table(report: ImportReport, table: Mapping[str, Any], prefix: str = "",
                src: Mapping[str, Any] | None = None) -> None:
    """Each scalar key of `table` through KOHYA; nested tables are the caller's business."""
    for key, value in table.items():
        apply_key(report, key, value, f"{prefix}{key}", src if src is not None else table)


def apply_key(report: ImportReport, key: str, value: Any, source: str, src: Mapping[str, Any]) -> None:
    if key == "lr_scheduler_args" and not is_secret(key):
        return apply_scheduler_args(report, value, source, src)
    if key == "sdxl" and _true(value):  # ignored as a setting, but says which model family it was for
        note = f"made for SDXL ({source} = {short(value)})"
        if not any(n.startswith("made for SDXL") for n in report.notes):
            report.notes.append(note)
    found = convert_key(report, key, value, source, src)
    if found is None:
        return
    rule, v = found
    for target in rule.targets:
        if target[-1] == "network_args" and isinstance(v, dict):
            merge_dict(report, source, target, v)
        else:
            report.map(source, target, v)


def convert_key(report: ImportReport, key: str, value: Any, source: str, src: Mapping[str, Any],
                why: str = "") -> tuple[Rule, Any] | None:
    """(the key's rule, its value converted), or None after recording why the key is not imported
    (`why` goes before the reason, e.g. the subset it came from)."""
    rule = KOHYA.get(key)
    if is_secret(key):
        return report.ignore(source, "secret: never imported")
    if rule is None:
        return report.unknown(source)
    if not rule.targets:
        return report.ignore(source, why + rule.reason)
    if empty(value):
        return report.ignore(source, "empty")
    try:
        return rule, (rule.convert(value, src) if rule.convert else value)
    except Skip as e:
        return report.ignore(source, str(e))
    except (TypeError, ValueError, OverflowError):
        return report.ignore(source, f"cannot read {short(value)}")


def _true(value: Any) -> bool:
    try:
        return to_bool(value)
    except Skip:
        return False


def apply_scheduler_args(report: ImportReport, value: Any, source: str, src: Mapping[str, Any]) -> None:
    """kohya --lr_scheduler_args ("min_lr=1e-6 gamma=0.9", a list, or a table): the arguments
    lorakiln has a setting for are mapped to it, each other one is reported by name."""
    if empty(value):
        return report.ignore(source, "empty")
    try:
        pairs = key_values(value)
    except Skip as e:
        return report.ignore(source, str(e))
    for k, v in pairs:
        known = SCHEDULER_ARGS.get(k)
        if known is None:
            report.ignore(f"{source}.{k}", "scheduler argument not interpreted (lorakiln's schedulers take "
                                           f"{', '.join(sorted(SCHEDULER_ARGS))})")
        else:
            apply_key(report, known, v, f"{source}.{k}", src)


def merge_dict(report: ImportReport, source: str, target: tuple[str, ...], value: dict) -> None:
    """Values that are small tables (network_args, repeats) collect keys from several sources."""
    merged = {**(report.values.get(target) or {}), **value}
    report.values[target] = merged
    for k, v in value.items():
        report.entries.append(Entry(source, "mapped", f"{'.'.join(target)}.{k}", v))
