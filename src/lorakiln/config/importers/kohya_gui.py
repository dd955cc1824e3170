"""kohya_ss GUI JSON (bmaltais/kohya_ss "Save config"): flat keys named after the GUI fields.

Configs pasted into articles are often not valid JSON as printed: seed 000's has no outer
braces and `"output_dir": ,` (an empty value). Both are repaired, and each repair is reported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lorakiln.config.importers.apply import apply_table, empty
from lorakiln.config.importers.report import ImportReport
from lorakiln.core.errors import ConfigError

_EMPTY_VALUE = re.compile(r'"([^"\\]+)"\s*:\s*(?=[,}\]])')
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def repair(text: str) -> tuple[str, list[str]]:
    """Make a pasted kohya_ss config readable JSON; returns (text, what was repaired)."""
    fixes = []
    text = text.strip().lstrip("\ufeff")
    if not text.startswith("{"):
        text = "{\n" + text.rstrip().rstrip(",") + "\n}"
        fixes.append("added the missing outer braces { }")
    empties = _EMPTY_VALUE.findall(text)
    if empties:
        text = _EMPTY_VALUE.sub(lambda m: f'"{m.group(1)}": null', text)
        fixes.append(f"read empty values as null: {', '.join(empties)}")
    if _TRAILING_COMMA.search(text):
        text = _TRAILING_COMMA.sub(r"\1", text)
        fixes.append("removed trailing commas")
    return text, fixes


MAX_DEPTH = 8  # a kohya_ss config is one flat object; a few levels allow odd hand edits


def _loads(text: str, path: Path):
    """json.loads, with its non-JSON failures (too deep, an integer of thousands of digits) as ConfigErrors."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(path, "JSON nested too deeply (a kohya_ss config is one flat object)") from None
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise ConfigError(path, f"a value cannot be read: {e}") from None


def _depth(doc) -> int:
    deepest, stack = 0, [(doc, 0)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d <= MAX_DEPTH and isinstance(node, (dict, list)):
            stack += [(v, d + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def parse(text: str, path: Path) -> ImportReport:
    report = ImportReport("kohya_ss GUI JSON", str(path))
    try:
        doc = _loads(text, path)
    except json.JSONDecodeError:
        fixed, report.repairs = repair(text)
        try:
            doc = _loads(fixed, path)
        except json.JSONDecodeError as e:
            raise ConfigError(path, f"not valid JSON, even after repairs ({'; '.join(report.repairs) or 'none'}): "
                                    f"line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError(path, "expected a JSON object of kohya_ss settings")
    if _depth(doc) > MAX_DEPTH:
        raise ConfigError(path, f"JSON nested more than {MAX_DEPTH} levels deep (a kohya_ss config is one flat object)")
    apply_table(report, doc)
    if "caption_extension" in doc and empty(doc["caption_extension"]):  # written empty, not left out
        report.notes.append("caption_extension was empty (kohya_ss changed its default; seed 000): "
                            "lorakiln keeps .txt")
    return report


def detect(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".json" or '"LoRA_type"' in text
