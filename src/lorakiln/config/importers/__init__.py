"""Import settings users already have into our sections (pure: text in, report out).

Formats (IMPORTERS): kohya_ss GUI JSON, LoRA Easy Training Scripts TOML, kohya dataset TOML,
sd-scripts' own config TOML. Every key of the file ends up mapped, ignored with a reason, or
unknown; values that our section models reject are moved to ignored with the model's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from lorakiln.config.importers import dataset_toml, easy_scripts, kohya_gui, sd_scripts
from lorakiln.config.importers.report import Entry, ImportReport
from lorakiln.config.messages import describe_error
from lorakiln.config.sections import sections
from lorakiln.config.tomlfile import parse_toml, read_config_text
from lorakiln.core.registry import Registry

__all__ = ["IMPORTERS", "Entry", "ImportReport", "import_text", "import_file"]


@dataclass(frozen=True)
class Importer:
    name: str
    description: str
    kind: str  # "json" or "toml": how the text is read before detect/parse
    detect: Callable[[Path, Any], bool]
    parse: Callable[[Any, Path], ImportReport]


IMPORTERS: Registry[Importer] = Registry("config format")
# detection order matters: the most specific TOML shapes first, sd-scripts' flat file last
IMPORTERS.register("kohya-gui", Importer("kohya-gui", "kohya_ss GUI JSON (bmaltais/kohya_ss)", "json",
                                         kohya_gui.detect, kohya_gui.parse))
IMPORTERS.register("easy-scripts", Importer("easy-scripts", "LoRA Easy Training Scripts TOML (derrian-distro)",
                                            "toml", easy_scripts.detect, easy_scripts.parse))
IMPORTERS.register("dataset-toml", Importer("dataset-toml", "kohya dataset config TOML ([general], [[datasets]])",
                                            "toml", dataset_toml.detect, dataset_toml.parse))
IMPORTERS.register("sd-scripts", Importer("sd-scripts", "sd-scripts config TOML (--output_config)", "toml",
                                          sd_scripts.detect, sd_scripts.parse))
_ORDER = ("kohya-gui", "easy-scripts", "dataset-toml", "sd-scripts")


def import_file(path: Path, fmt: str | None = None) -> ImportReport:
    path = Path(path)
    return import_text(read_config_text(path), path, fmt)


def import_text(text: str, path: Path, fmt: str | None = None) -> ImportReport:
    path = Path(path)
    toml_doc = None
    if fmt is None:
        if kohya_gui.detect(path, text):
            fmt = "kohya-gui"
        else:
            toml_doc = _toml(text, path)
            fmt = next(n for n in _ORDER[1:] if IMPORTERS.get(n).detect(path, toml_doc))
    imp = IMPORTERS.get(fmt)
    if imp.kind == "json":
        report = imp.parse(text, path)
    else:
        report = imp.parse(toml_doc if toml_doc is not None else _toml(text, path), path)
    validate(report)
    return report


def _toml(text: str, path: Path) -> dict:
    return parse_toml(text, path).unwrap()


def validate(report: ImportReport) -> None:
    """Check the values against the section models; a value a model rejects becomes ignored."""
    known = sections()
    for name, values in report.sections().items():
        model = known.get(name)
        if model is None:
            for path in [p for p in report.values if p[0] == name]:
                report.unmap(path, f"no [{name}] section in this lorakiln")
            continue
        for _ in range(len(report.values) + 1):
            try:
                model.model_validate(report.sections().get(name, {}))
                break
            except ValidationError as e:
                _drop_invalid(report, name, e, model)


def _drop_invalid(report: ImportReport, name: str, e: ValidationError, model) -> None:
    for err in e.errors():
        loc = (name, *(str(p) for p in err["loc"]))
        target = next((p for p in sorted(report.values, key=len, reverse=True) if loc[:len(p)] == p), None)
        if target is None:  # a model-level check: name the section's values in the message
            target = next(p for p in report.values if p[0] == name)
        reason = f"rejected by [{name}]: {describe_error(err, model, name)}"
        value = report.values.get(target)
        if isinstance(value, dict) and len(loc) > len(target) and loc[len(target)] in value:
            report.unmap_item(target, loc[len(target)], reason)  # one subset's repeats, one network arg
        else:
            report.unmap(target, reason)
