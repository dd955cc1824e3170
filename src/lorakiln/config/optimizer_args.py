"""Optimizer arguments in kohya's forms, parsed without torch so the config can check them.

"weight_decay=0.1 betas=0.9,0.99", "weight_decay=0.1, betas=[0.9,0.99]", a list of "k=v"
strings, or a TOML table. Each value is a Python literal (number, bool, None, a tuple or list of
numbers, a quoted string) or a bare word (taken as a string); numbers must be finite. A value
that is none of these ("(0.9,", "nan", "1e999") is an error naming the key, raised when the
config is validated rather than after the latents are cached.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

_KEY = re.compile(r"(?:^|[\s,;]+)([A-Za-z_][A-Za-z0-9_]*)\s*=")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NOT_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


class BadOptimizerArgs(ValueError):
    """A malformed optimizer_args value (a ValueError, so pydantic reports it with the key)."""


def _checked(key: str, v: Any, text: Any) -> Any:
    if isinstance(v, list):
        v = tuple(v)
    items = v if isinstance(v, tuple) else (v,)
    for x in items:
        if isinstance(x, (tuple, list)):
            raise BadOptimizerArgs(f"optimizer_args {key}={text!r}: nested lists are not optimizer arguments")
        if isinstance(x, float) and not math.isfinite(x):
            raise BadOptimizerArgs(f"optimizer_args {key}={text!r}: numbers must be finite")
        if isinstance(v, tuple) and not (isinstance(x, (int, float)) and not isinstance(x, bool)):
            raise BadOptimizerArgs(f"optimizer_args {key}={text!r}: a list must hold numbers only")
        if not isinstance(x, (int, float, str, bool, type(None))):
            raise BadOptimizerArgs(f"optimizer_args {key}={text!r}: not a number, bool, string or list of numbers")
    return v


def _value(key: str, raw: str) -> Any:
    text = raw.strip().strip(",; ").strip()
    if not text:
        raise BadOptimizerArgs(f"optimizer_args {key}=: no value")
    low = text.lower()
    if low in _NOT_FINITE:
        raise BadOptimizerArgs(f"optimizer_args {key}={text!r}: numbers must be finite")
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if _WORD.fullmatch(text):
        return text
    if "," in text and not text.startswith(("[", "(")):
        text = f"[{text}]"
    try:
        v = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise BadOptimizerArgs(f"optimizer_args {key}={raw.strip()!r}: not a number, bool, quoted string or "
                               "list of numbers such as 0.9,0.99") from None
    return _checked(key, v, raw.strip())


def parse_optimizer_args(args: str | list | dict | None) -> dict[str, Any]:
    """The arguments as a dict (lists become tuples, what torch optimizers expect);
    BadOptimizerArgs for a malformed string or value."""
    if not args:
        return {}
    if isinstance(args, dict):
        return {str(k): _checked(str(k), v, v) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        out: dict[str, Any] = {}
        for a in args:
            out.update(parse_optimizer_args(str(a)))
        return out
    matches = list(_KEY.finditer(args))
    if not matches or args[: matches[0].start()].strip(" ,;"):
        raise BadOptimizerArgs(f"optimizer_args {args!r}: expected key=value pairs such as "
                               "'weight_decay=0.1 betas=0.9,0.99'")
    out = {}
    for m, nxt in zip(matches, [*matches[1:], None]):
        out[m.group(1)] = _value(m.group(1), args[m.end(): nxt.start() if nxt else len(args)])
    return out
