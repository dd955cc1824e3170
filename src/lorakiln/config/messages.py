"""Readable config errors: pydantic's errors in our words, with "did you mean" for unknown keys.

Also the one range check every section shares: numbers stay finite and within 64 bits, so a
value such as 99999999999999999999999 or inf is an error naming the key, not a silent disaster.
"""

from __future__ import annotations

import difflib
import math
import re
import typing
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

INT64_MAX = 2**63 - 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, '' when none is close (click's own rule)."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def out_of_range(value: Any) -> str | None:
    """Why a number no setting can hold is refused (beyond 64 bits, inf, nan); None when it is fine."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return "is beyond the 64-bit integer range"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def check_numbers(value: Any, where: str = "") -> None:
    """Raise ValueError naming the first number inside `value` that is out of range."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            check_numbers(getattr(value, name), f"{where}.{name}" if where else name)
        return
    if isinstance(value, dict):
        items: Iterable = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        why = out_of_range(value)
        if why:
            raise ValueError(f"{_short(value)} {why}" + (f" (at {where})" if where else ""))
        return
    for k, v in items:
        check_numbers(v, f"{where}.{k}" if isinstance(k, str) and where else str(k) if isinstance(k, str) else f"{where}[{k}]")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:18]}...{text[-8:]} ({len(text)} characters)"


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last key of `loc` (walks fields, lists and dicts)."""
    for part in loc:
        if model is None:
            return None
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            continue  # a list index or a dict key: the element type was already chosen
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_UNION_BRANCH = re.compile(r"^(int|float|str|bool|none)$|\[")


def _nested_home(model: type[BaseModel] | None, key: str) -> str | None:
    """The sub-table of `model` that has a field `key` ([train] network_dim -> network)."""
    for name, field in (model.model_fields.items() if model is not None else ()):
        inner = _inner_model(field.annotation)
        if inner is not None and key in inner.model_fields:
            return name
    return None


def best_error(e: ValidationError) -> dict:
    """The error to show first: a value of the right type that fails a check says more than
    'not a number' from the other branches of a union."""
    errors = e.errors()
    return next((x for x in errors if not str(x.get("type", "")).endswith("_type")), errors[0])


def describe_error(err: dict, model: type[BaseModel] | None = None, section: str = "") -> str:
    """One pydantic error as 'key: problem'; unknown keys say which keys are close."""
    # pydantic names the branch of a union it tried (text_encoder_lr.float): not a key the user wrote
    loc = tuple(p for p in err.get("loc") or () if not (isinstance(p, str) and _UNION_BRANCH.search(p)))
    where = ".".join(str(p) for p in loc)
    if err.get("type") == "extra_forbidden" and loc:
        parent = _model_at(model, loc[:-1])
        home = _nested_home(parent, str(loc[-1]))
        if home:
            table = ".".join(p for p in (section, *map(str, loc[:-1]), home) if p)
            return f"{where}: not a key of this table; it belongs in [{table}]"
        known = list(parent.model_fields) if parent is not None else []
        return f"{where}: unknown key{did_you_mean(str(loc[-1]), known)}"
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if err.get("type") in ("int_parsing_size", "finite_number"):
        msg += f" (got {_short(err.get('input'))})"
    elif err.get("type") in ("list_type", "tuple_type") and isinstance(err.get("input"), str):
        msg += f", e.g. [{err['input']!r}]"
    return f"{where}: {msg}" if where else msg


def describe(e: ValidationError, model: type[BaseModel] | None = None, section: str = "", limit: int = 3) -> str:
    """The first few errors of a validation, joined; how many more there were."""
    errors = e.errors()
    errors = sorted(errors, key=lambda x: str(x.get("type", "")).endswith("_type"))
    parts = [describe_error(err, model, section) for err in errors[:limit]]
    more = len(errors) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
