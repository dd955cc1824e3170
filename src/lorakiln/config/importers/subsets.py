"""kohya subsets ([[datasets.subsets]], LoRA Easy Training Scripts' [[subsets]]) -> our settings.

num_repeats becomes [export].repeats.<name>. A caption or augmentation option set alike on
every subset becomes the [train.data] default; one set on some subsets, or differently, stays
with its subset in [train.data.subsets.<name>], which `kiln train` applies to that subset's
folder only (seed 001 trains its outfit folders with their own settings). Options the data
pipeline does not have are reported with the subset they came from.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any, Mapping

from lorakiln.config.importers.apply import apply_key, convert_key, short
from lorakiln.config.importers.mapping import DATA, KOHYA, Skip, to_int
from lorakiln.config.importers.report import Entry, ImportReport
from lorakiln.config.train import SubsetOptions

_N_NAME = re.compile(r"^(\d+)_(.+)$")
# the caption extension names files in the user's folders; `kiln export` writes one for all subsets
PER_SUBSET = frozenset(SubsetOptions.model_fields) - {"caption_extension"}
Setting = tuple[str, Any]  # (source key in the file, value)


def per_subset_field(key: str) -> str | None:
    """The SubsetOptions field a kohya key sets, when it is one a subset can have on its own."""
    rule = KOHYA.get(key)
    if rule is not None and len(rule.targets) == 1:
        target = rule.targets[0]
        if target[:-1] == DATA and target[-1] in PER_SUBSET:
            return target[-1]
    return None


def subset_name(subset: Mapping[str, Any], index: int) -> str:
    """A subset's name: its folder (without the kohya N_ prefix), else its label."""
    folder = subset.get("image_dir")
    if isinstance(folder, str) and folder.strip():
        name = PurePath(folder.replace("\\", "/")).name
        m = _N_NAME.match(name)
        return m.group(2) if m else name
    label = subset.get("name")
    return str(label) if label else f"subset{index + 1}"


class SubsetImport:
    """Collects every subset of a file (all datasets), then places each option once it knows
    whether the subsets agree on it."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.repeats: dict[str, int] = dict(report.values.get(("export", "repeats")) or {})
        self.options: dict[str, dict[str, Setting]] = {}  # subset name -> field -> setting

    def add(self, subsets: list, prefix: str, inherited: Mapping[str, Setting] | None = None) -> None:
        """One list of subsets; `inherited` holds options its dataset (or [general]) gives every subset."""
        for i, s in enumerate(subsets):
            if not isinstance(s, Mapping):
                self.report.ignore(f"{prefix}[{i}]", "not a table")
            elif s.get("is_reg"):
                for key in s:
                    self.report.ignore(f"{prefix}[{i}].{key}",
                                       "regularisation subset: set [train.data].reg_data_dir to its folder")
            else:
                self._subset(s, subset_name(s, i), f"{prefix}[{i}].", inherited or {})

    def _subset(self, s: Mapping[str, Any], name: str, where: str, inherited: Mapping[str, Setting]) -> None:
        report = self.report
        opts = self.options.setdefault(name, {})
        for key, value in s.items():
            field = per_subset_field(key)
            if key == "num_repeats":
                self._repeats(where + key, name, value)
            elif key in ("image_dir", "name"):
                report.ignore(where + key, f"names the subset {name!r}; import its images with `kiln import`")
            elif key in ("is_reg", "class_tokens", "metadata_file"):
                report.ignore(where + key, "captions come from the project (class tokens: [caption].class_tokens)")
            elif field is not None:
                found = convert_key(report, key, value, where + key, s)
                if found is not None:
                    opts[field] = (where + key, found[1])
            else:
                found = KOHYA.get(key)
                if found is not None and not found.targets:  # known, unsupported: say which subset loses it
                    convert_key(report, key, value, where + key, s, why=f"subset {name!r}: ")
                else:
                    apply_key(report, key, value, where + key, s)
        for key, (source, value) in inherited.items():
            field = per_subset_field(key)
            if key == "num_repeats" and "num_repeats" not in s:
                self._repeats(source, name, value)
            elif field is not None and field not in opts and key not in s:
                found = convert_key(report, key, value, source, inherited)
                if found is not None:
                    opts[field] = (source, found[1])
        if "num_repeats" not in s and "num_repeats" not in inherited:
            self.repeats.setdefault(name, 1)
            report.notes.append(f"subset {name!r} has no num_repeats: 1, as kohya does with a dataset config")

    def _repeats(self, source: str, name: str, value: Any) -> None:
        try:
            n = to_int(value)
        except (Skip, TypeError, ValueError, OverflowError):
            return self.report.ignore(source, f"cannot read {short(value)}")
        if name in self.repeats and self.repeats[name] != n:
            self.report.notes.append(f"two subsets are named {name!r}: repeats {n} replaces {self.repeats[name]}")
        self.repeats[name] = n
        self.report.entries.append(Entry(source, "mapped", f"export.repeats.{name}", n))

    def finish(self) -> None:
        if self.repeats:
            self.report.values[("export", "repeats")] = self.repeats
        fields = sorted({f for opts in self.options.values() for f in opts})
        for field in fields:
            self._place(field)

    def _place(self, field: str) -> None:
        setters = {n: opts[field] for n, opts in self.options.items() if field in opts}
        if len(setters) == len(self.options) and len({repr(v) for _, v in setters.values()}) == 1:
            for source, value in setters.values():  # every subset alike: the default for all
                self.report.map(source, (*DATA, field), value)
            return
        for name, (source, value) in setters.items():
            self.report.map(source, (*DATA, "subsets", name, field), value, f"subset {name!r} only")
        others = [n for n in self.options if n not in setters]
        if others:
            shown = ", ".join(f"{n} = {v!r}" for n, (_, v) in setters.items())
            self.report.notes.append(f"{field} is set per subset ({shown}); {', '.join(map(repr, others))} "
                                     f"keep{'s' if len(others) == 1 else ''} [train.data].{field}")
