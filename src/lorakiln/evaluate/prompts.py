"""A1111 prompt syntax: `<lora:NAME:W>` tags, Prompt S/R, axis value lists and `(emphasis:1.2)`.

Written from the documented behaviour of stable-diffusion-webui (reference/eval-merge-formats.md
§1.4, §4), not from its code:

- `<lora:NAME>`, `<lora:NAME:W>`, `<lora:NAME:TE:UNET[:DYN]>` and named `te=`, `unet=`, `dyn=`;
  the U-Net weight defaults to the text-encoder weight; `<lyco:...>` (the old LyCORIS
  extension's spelling) means the same. Other `<name:...>` extra-network tags are left alone.
- Prompt S/R: the first value is searched for and every occurrence in the prompt and the
  negative prompt is replaced by each value in turn; not finding it is an error.
- Axis values are comma separated (double quotes protect commas); numeric axes accept ranges
  `1-5`, `1-10 (+2)`, `0.5-1 [5]` (a count of evenly spaced values).
- Emphasis: `(a)` x1.1, `[a]` /1.1, `(a:1.5)` x1.5, nested multiply, `\\(` is a literal bracket.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

from lorakiln.core.errors import KilnError

_TAG = re.compile(r"<(lora|lyco):([^>]*)>", re.IGNORECASE)
_NAMED = ("te", "unet", "dyn")


@dataclass(frozen=True)
class LoraRef:
    """A LoRA asked for in a prompt: its name (alias or file stem) and weights per part."""

    name: str
    te: float = 1.0
    unet: float = 1.0

    def tag(self) -> str:
        if self.te == self.unet:
            return f"<lora:{self.name}:{_num(self.te)}>"
        return f"<lora:{self.name}:{_num(self.te)}:{_num(self.unet)}>"


def _num(x: float) -> str:
    return f"{x:g}"


def _float(value: str, tag: str) -> float:
    from lorakiln.merge.files import check_weight

    try:
        return check_weight(f"prompt tag {tag}", float(value))
    except ValueError:
        raise KilnError(f"prompt tag {tag}: {value!r} is not a number") from None


def _parse_tag(body: str, tag: str) -> LoraRef:
    parts = [p.strip() for p in body.split(":")]
    name, args = parts[0], parts[1:]
    if not name:
        raise KilnError(f"prompt tag {tag}: no LoRA name")
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    values: dict[str, str] = dict(zip(_NAMED, positional))
    values.update({k.strip().lower(): v.strip() for k, v in named.items() if k.strip().lower() in _NAMED})
    te = _float(values["te"], tag) if "te" in values else 1.0
    unet = _float(values["unet"], tag) if "unet" in values else te
    return LoraRef(name, te, unet)


def tidy(prompt: str) -> str:
    """Collapse the empty items and spaces a removed tag leaves behind."""
    text = re.sub(r"[ \t]+", " ", prompt)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip().strip(",").strip()


def extract_loras(prompt: str) -> tuple[str, list[LoraRef]]:
    """(prompt without LoRA tags, the LoRAs in order of appearance)."""
    refs = [_parse_tag(m.group(2), m.group(0)) for m in _TAG.finditer(prompt)]
    return tidy(_TAG.sub("", prompt)), refs


# -- Prompt S/R ---------------------------------------------------------------------------

def prompt_sr(prompt: str, negative: str, search: str, replace: str) -> tuple[str, str]:
    """Replace every `search` in prompt and negative prompt (A1111 X/Y/Z 'Prompt S/R')."""
    if search not in prompt and search not in negative:
        raise KilnError(f"Prompt S/R: {search!r} is in neither the prompt nor the negative prompt")
    return prompt.replace(search, replace), negative.replace(search, replace)


# -- axis value lists ---------------------------------------------------------------------

MAX_VALUES = 1000  # values one list or range may give (a typo like 1-1000000000 would fill the memory)


def split_values(text: str) -> list[str]:
    """Comma-separated values; double quotes keep commas inside a value. An empty item (two
    commas in a row, or one at an end) is an error, not skipped: `0.6,,1` is likely a lost value."""
    rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    items = [v.strip() for row in rows for v in row]
    if not any(items):
        raise KilnError(f"{text!r}: no values")
    if not all(items):
        raise KilnError(f"{text!r}: an empty item (two commas in a row, or one at an end)")
    return items


def in_range(values: list, lo, hi, what: str) -> list:
    """`values` when each is within [lo, hi], else an error naming the first that is not."""
    for v in values:
        if not lo <= v <= hi:
            raise KilnError(f"{what} {v:g} is out of range ({lo:g} to {hi:g})")
    return values


_INT_RANGE = re.compile(r"^\s*([+-]?\d+)\s*-\s*([+-]?\d+)\s*(?:\(\s*([+-]?\d+)\s*\)|\[\s*(\d+)\s*\])?\s*$")
_FLOAT_RANGE = re.compile(
    r"^\s*([+-]?\d+(?:\.\d*)?)\s*-\s*([+-]?\d+(?:\.\d*)?)\s*(?:\(\s*([+-]?\d+(?:\.\d*)?)\s*\)|\[\s*(\d+)\s*\])?\s*$")


def _expand(value: str, pattern: re.Pattern, kind) -> list:
    m = pattern.match(value)
    if not m:
        try:
            return [kind(value)]
        except ValueError:
            raise KilnError(f"axis value {value!r} is not a {kind.__name__} or a range like 1-5 (+1)") from None
    start, end = kind(m.group(1)), kind(m.group(2))
    if m.group(4):  # [count]: evenly spaced, ends included
        n = int(m.group(4))
        if not 1 <= n <= MAX_VALUES:
            raise KilnError(f"axis range {value!r}: the count must be 1 to {MAX_VALUES}")
        if n == 1:
            return [start]
        return [kind(start + (end - start) * i / (n - 1)) for i in range(n)]
    step = kind(m.group(3)) if m.group(3) else kind(1 if end >= start else -1)
    if step == 0 or (end - start) * step < 0:
        raise KilnError(f"axis range {value!r}: the step {step} never reaches {end}")
    if abs(end - start) / abs(step) >= MAX_VALUES:
        raise KilnError(f"axis range {value!r} gives more than {MAX_VALUES} values")
    out, x, i = [], start, 0
    while (step > 0 and x <= end + 1e-9) or (step < 0 and x >= end - 1e-9):
        out.append(round(x, 10) if kind is float else x)
        i += 1
        x = start + step * i
    return out


def int_values(text: str) -> list[int]:
    return _at_most(text, [v for item in split_values(text) for v in _expand(item, _INT_RANGE, int)])


def float_values(text: str) -> list[float]:
    out = _at_most(text, [v for item in split_values(text) for v in _expand(item, _FLOAT_RANGE, float)])
    bad = next((v for v in out if not math.isfinite(v)), None)
    if bad is not None:
        raise KilnError(f"axis value {bad} is not a finite number")
    return out


def _at_most(text: str, values: list) -> list:
    if len(values) > MAX_VALUES:
        raise KilnError(f"{text!r} gives {len(values)} values; at most {MAX_VALUES}")
    return values


# -- emphasis ---------------------------------------------------------------------------------

_ATTN = re.compile(r"\\[\\()\[\]]|\\|\(|\[|:\s*([+-]?\d*\.?\d+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
UP, DOWN = 1.1, 1 / 1.1


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Prompt -> [(text, weight)] with A1111's emphasis rules; neighbours of equal weight merged.

    Unclosed brackets apply to the rest of the prompt, stray closers are literal text."""
    segs: list[list] = []
    opened: list[tuple[int, str]] = []

    def scale(start: int, factor: float) -> None:
        for s in segs[start:]:
            s[1] *= factor

    for m in _ATTN.finditer(text):
        tok, weight = m.group(0), m.group(1)
        if tok.startswith("\\") and len(tok) == 2:
            segs.append([tok[1], 1.0])
        elif tok in ("(", "["):
            opened.append((len(segs), tok))
        elif weight is not None and opened and opened[-1][1] == "(":
            scale(opened.pop()[0], float(weight))
        elif tok == ")" and opened and opened[-1][1] == "(":
            scale(opened.pop()[0], UP)
        elif tok == "]" and opened and opened[-1][1] == "[":
            scale(opened.pop()[0], DOWN)
        else:
            segs.append([tok, 1.0])
    for start, kind in reversed(opened):
        scale(start, UP if kind == "(" else DOWN)
    merged: list[tuple[str, float]] = []
    for t, w in segs:
        if merged and abs(merged[-1][1] - w) < 1e-12:
            merged[-1] = (merged[-1][0] + t, merged[-1][1])
        else:
            merged.append((t, w))
    return merged or [("", 1.0)]


def plain_text(segments: list[tuple[str, float]]) -> str:
    return "".join(t for t, _ in segments)


def has_emphasis(segments: list[tuple[str, float]]) -> bool:
    return any(abs(w - 1.0) > 1e-9 for _, w in segments)
