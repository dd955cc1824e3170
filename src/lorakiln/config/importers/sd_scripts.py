"""sd-scripts' own config file (`--output_config` / `--config_file`): flat option names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.importers.apply import apply_key
from lorakiln.config.importers.report import ImportReport


def parse(doc: Mapping[str, Any], path: Path) -> ImportReport:
    report = ImportReport("sd-scripts config TOML", str(path))
    for key, value in doc.items():
        if isinstance(value, Mapping):  # --output_config groups options in tables; names are unique
            for k, v in value.items():
                apply_key(report, k, v, f"{key}.{k}", value)
        else:
            apply_key(report, key, value, key, doc)
    return report


def detect(path: Path, doc: Mapping[str, Any]) -> bool:
    return True  # the fallback for TOML files
