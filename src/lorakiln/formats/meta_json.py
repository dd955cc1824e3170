"""Decoding the JSON that other tools store inside metadata strings (ss_tag_frequency,
ss_network_args, provenance, ...) without ever raising: a file from anywhere may hold text
nested thousands of levels deep, integers of thousands of digits or plain garbage there."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64  # kohya's deepest value (ss_datasets) is ~5 levels; deeper is not metadata a tool wrote


def _too_deep(doc: Any) -> bool:
    stack = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return False


def decode(value: Any) -> tuple[Any, str | None]:
    """(the decoded value, None), or (None, why it cannot be read) for text that is not JSON,
    is nested more than MAX_DEPTH levels, or holds a number Python refuses to read."""
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, f"is a {type(value).__name__}, not text"
    try:
        doc = json.loads(value)
    except RecursionError:
        return None, f"its JSON is nested too deeply to read (over {MAX_DEPTH} levels)"
    except json.JSONDecodeError as e:
        return None, f"is not JSON ({e.msg} at character {e.pos})"
    except ValueError as e:  # e.g. an integer beyond Python's 4300-digit conversion limit
        return None, f"holds a value that cannot be read ({e})"
    if _too_deep(doc):
        return None, f"its JSON is nested too deeply to read (over {MAX_DEPTH} levels)"
    return doc, None


def decode_dict(value: Any) -> dict:
    """The JSON object in `value`, or {} when it is missing, unreadable or not an object."""
    doc, _ = decode(value)
    return doc if isinstance(doc, dict) else {}
