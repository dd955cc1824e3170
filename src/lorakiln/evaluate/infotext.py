"""A1111 `parameters` infotext: the PNG text chunk that A1111, Forge, ComfyUI loaders and Civitai read.

Layout (reference/eval-merge-formats.md §3.5, §4):

    <prompt, may span lines>
    Negative prompt: <negative, may span lines>
    Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x768, Model hash: 0123456789,
    Model: animagine-xl-3.1, Clip skip: 2, Lora hashes: "kafka: 0123456789ab", Version: lorakiln 0.1.0

Values holding ',', ':' or a newline are JSON-quoted, as A1111 does. Sampler names use A1111's
labels with the schedule folded in ("DPM++ 2M Karras"), which every A1111 version and Civitai read.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Mapping

from lorakiln.core.errors import KilnError

# our sampler key -> A1111 label
A1111_SAMPLERS = {
    "euler_a": "Euler a", "euler": "Euler", "euler_karras": "Euler Karras", "heun": "Heun", "ddim": "DDIM",
    "ddpm": "DDPM", "pndm": "PLMS", "lms": "LMS", "lms_karras": "LMS Karras", "dpm_2": "DPM2", "dpm_2_a": "DPM2 a",
    "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras", "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras",
    "dpmpp_sde": "DPM++ SDE", "unipc": "UniPC",
}
_BY_LABEL = {v.lower(): k for k, v in A1111_SAMPLERS.items()}
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def sampler_label(key: str) -> str:
    return A1111_SAMPLERS.get(key, key)


def sampler_key(name: str, schedule: str | None = None) -> str:
    """Our sampler key for a key, a kohya alias or an A1111 label ("DPM++ 2M" + schedule "Karras")."""
    from lorakiln.evaluate.samplers import ALIASES, SAMPLERS

    n = name.strip()
    if n in SAMPLERS or n in ALIASES:
        return ALIASES.get(n, n)
    label = n.lower()
    if schedule and schedule.strip().lower() not in ("", "automatic") and not label.endswith(schedule.lower()):
        label = f"{label} {schedule.strip().lower()}"
    if label in _BY_LABEL:
        return _BY_LABEL[label]
    known = ", ".join(f"{k} ({v})" for k, v in A1111_SAMPLERS.items())
    raise KilnError(f"unknown sampler {name!r}; known: {known}")


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text and '"' not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def lora_hashes_value(hashes: Mapping[str, str]) -> str:
    """`alias: 12hex, alias2: 12hex` with ':' and ',' removed from aliases (A1111's rule)."""
    return ", ".join(f"{re.sub(r'[:,]', '', a)}: {h[:12]}" for a, h in hashes.items())


def format_infotext(prompt: str, negative: str, params: Mapping[str, Any]) -> str:
    """Prompt, negative prompt and the parameter line; None values are left out."""
    line = ", ".join(f"{k}: {quote(v)}" for k, v in params.items() if v is not None and v != "")
    parts = [prompt]
    if negative:
        parts.append(f"Negative prompt: {negative}")
    parts.append(line)
    return "\n".join(parts)


def parse_infotext(text: str) -> dict[str, Any]:
    """The inverse: {"Prompt", "Negative prompt", <params>...}; Size also as Size-1/Size-2 (ints),
    Lora hashes also as a dict under "Lora hashes map"."""
    lines = text.strip().split("\n")
    params: dict[str, Any] = {}
    if lines and len(_PARAM.findall(lines[-1])) >= 3:
        for k, v in _PARAM.findall(lines.pop()):
            params[k.strip()] = unquote(v)
    prompt, negative, in_neg = [], [], False
    for ln in lines:
        if ln.startswith("Negative prompt:"):
            in_neg, ln = True, ln[len("Negative prompt:"):].strip()
        (negative if in_neg else prompt).append(ln)
    out: dict[str, Any] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    out.update(params)
    size = str(params.get("Size", ""))
    if re.fullmatch(r"\d+x\d+", size):
        w, h = size.split("x")
        out["Size-1"], out["Size-2"] = int(w), int(h)
    if params.get("Lora hashes"):
        out["Lora hashes map"] = dict(
            (p.split(":", 1)[0].strip(), p.split(":", 1)[1].strip())
            for p in str(params["Lora hashes"]).split(",") if ":" in p)
    return out


# -- PNG chunk --------------------------------------------------------------------------------

def png_bytes(image, infotext: str) -> bytes:
    """The image as PNG with the infotext (if any) in a `parameters` text chunk (iTXt when not Latin-1)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if infotext:
        info.add_text("parameters", infotext)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def read_png_infotext(path) -> str | None:
    """The `parameters` text of a PNG, or None."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.info.get("parameters") or (getattr(im, "text", {}) or {}).get("parameters")
