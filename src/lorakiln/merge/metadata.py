"""Metadata for LoRAs lorakiln writes: the minimum kohya keys A1111 and ComfyUI classify by,
ModelSpec's required keys, and provenance (inputs by file name and hash, weights, method).

A1111 shows a LoRA for SDXL only if `ss_base_model_version` starts with "sdxl_" and uses
`ss_output_name` as its alias (reference/eval-merge-formats.md §0.4–5, §3.3–3.4).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

from lorakiln import __version__
from lorakiln.formats.meta_json import decode, decode_dict

PROVENANCE_KEY = "lorakiln.provenance"

_ARCH = {
    "sd15": ("sd_v1", "False", "stable-diffusion-v1/lora", "diffusers", "512x512"),
    "sd2": ("sd_v2", "True", "stable-diffusion-v2-512/lora", "diffusers", "512x512"),
    "sdxl": ("sdxl_base_v1-0", "False", "stable-diffusion-xl-v1-base/lora",
             "https://github.com/Stability-AI/generative-models", "1024x1024"),
}
# keys an output inherits from its input(s) when they describe the data, not the tensors
INHERITED = ("ss_tag_frequency", "ss_dataset_dirs", "ss_sd_model_name", "ss_sd_model_hash",
             "ss_new_sd_model_hash", "ss_clip_skip", "modelspec.trigger_phrase", "modelspec.encoder_layer",
             "modelspec.prediction_type", "ss_v_parameterization", "lorakiln_trigger", "modelspec.resolution",
             "modelspec.architecture")
# of those, the ones a merge keeps only when every input says the same (the resolution trained
# at is the inputs' to state: a merge never invents one)
AGREED = ("ss_sd_model_name", "ss_sd_model_hash", "ss_new_sd_model_hash", "ss_clip_skip",
          "modelspec.encoder_layer", "modelspec.prediction_type", "ss_v_parameterization", "modelspec.resolution",
          "modelspec.architecture")
# what ModelSpec's architecture names start with, per detected architecture
_FAMILY = {"sd15": "stable-diffusion-v1", "sd2": "stable-diffusion-v2", "sdxl": "stable-diffusion-xl-v1"}
_PER_INPUT = ("ss_tag_frequency", "ss_dataset_dirs")


def modelspec_date(timestamp: float | None = None) -> str:
    """ISO-8601 with its UTC offset, as ModelSpec asks (kohya: datetime.isoformat())."""
    when = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)
    return when.isoformat(timespec="seconds")


def triggers_of(metadata: dict[str, str]) -> list[str]:
    raw = metadata.get("modelspec.trigger_phrase") or metadata.get("lorakiln_trigger") or ""
    return [t.strip() for t in raw.split(",") if t.strip()]


def merged_inherit(inputs: list[tuple[str, dict[str, str]]]) -> tuple[dict[str, str], list[str]]:
    """What a merge says about its data, from every input (name, metadata): triggers unioned in
    order; tag frequencies and dataset folders kept per input, each folder prefixed with its
    input's name ("a/10_kafka"); base model, clip skip and prediction type only where all inputs
    agree. Returns (metadata, notes on what was left out)."""
    if len(inputs) == 1:
        meta = inputs[0][1]
        return {k: meta[k] for k in INHERITED if k in meta}, []
    out: dict[str, str] = {}
    triggers = list(dict.fromkeys(t for _, m in inputs for t in triggers_of(m)))
    if triggers:
        out["modelspec.trigger_phrase"] = out["lorakiln_trigger"] = ", ".join(triggers)
    for key in _PER_INPUT:
        combined = {f"{PurePath(name).stem}/{folder}": v for name, m in inputs
                    for folder, v in decode_dict(m.get(key)).items()}
        if combined:
            out[key] = json.dumps(combined, ensure_ascii=False)
    notes = []
    for key in AGREED:
        values = {m.get(key) for _, m in inputs}
        if len(values) == 1 and None not in values:
            out[key] = values.pop()
        elif len(values - {None}) > 1:
            listing = ", ".join(f"{n}: {m.get(key, '-')}" for n, m in inputs)
            done = ("the one detected from the tensors is written" if key == "modelspec.architecture"
                    else "left out of the result's metadata")
            notes.append(f"inputs disagree on {key} ({listing}); {done}")
    return out, notes


def merge_comment(weights: list[tuple[str, float]], how: str) -> str:
    """ss_training_comment of a merge: every input with its weight, and what was done."""
    listed = ", ".join(f"{n} x{w:g}" for n, w in weights)
    return f"merged by lorakiln: {listed}; exact weighted sum of the deltas, {how}"


def arch_keys(arch: str, fallback: dict[str, str] | None = None) -> dict[str, str]:
    """ss_base_model_version, ss_v2 and the ModelSpec architecture keys for `arch`: the detected
    architecture decides, but a more specific ModelSpec name of the same family in `fallback`
    (e.g. stable-diffusion-v2-768-v) is kept. The resolution is not among them: it belongs to
    the training, so it comes from the inputs (or default_resolution), never from the arch."""
    fb = fallback or {}
    if arch not in _ARCH:
        keep = ("ss_base_model_version", "ss_v2", "modelspec.architecture", "modelspec.implementation")
        return {k: fb[k] for k in keep if k in fb}
    version, v2, spec, impl, _ = _ARCH[arch]
    stated = (fb.get("modelspec.architecture") or "").split("/")[0]
    if stated.startswith(_FAMILY[arch]):
        spec = f"{stated}/lora"
    return {"ss_base_model_version": version, "ss_v2": v2, "modelspec.architecture": spec,
            "modelspec.implementation": impl}


def default_resolution(arch: str) -> str | None:
    """The native resolution of `arch` (kohya's rule when nothing else says one), None if unknown."""
    return _ARCH[arch][4] if arch in _ARCH else None


def network_args(conv_dim: int | None, conv_alpha: float | None) -> str:
    return json.dumps({"conv_dim": str(conv_dim), "conv_alpha": str(conv_alpha)} if conv_dim else {})


def lora_metadata(*, arch: str, title: str, dim: int | str, alpha: float | str, comment: str,
                  provenance: dict[str, Any], merged_from: list[str] | None = None,
                  conv_dim: int | None = None, conv_alpha: float | None = None,
                  inherit: dict[str, str] | None = None) -> dict[str, str]:
    """Everything a written LoRA carries; hashes are added by write_lora."""
    inherit = inherit or {}
    meta = {k: inherit[k] for k in INHERITED if k in inherit}
    meta.update(arch_keys(arch, inherit))
    meta.update({
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_network_args": network_args(conv_dim, conv_alpha),
        "ss_output_name": title,
        "ss_training_comment": comment,
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.title": title,
        "modelspec.date": modelspec_date(),
        PROVENANCE_KEY: provenance_value(provenance),
    })
    if merged_from:
        meta["modelspec.merged_from"] = ", ".join(merged_from)
    return meta


def provenance_value(provenance: dict[str, Any]) -> str:
    """The JSON string stored under PROVENANCE_KEY."""
    return json.dumps({"tool": f"lorakiln {__version__}", **provenance}, ensure_ascii=False)


def read_provenance(metadata: dict[str, str]) -> dict[str, Any] | None:
    value, _ = decode(metadata.get(PROVENANCE_KEY))
    return value if isinstance(value, dict) else None


def same_job(metadata: dict[str, str], provenance: dict[str, Any]) -> bool:
    """True when an existing output was made by the same operation on the same inputs
    (compared without the tool version), so the work can be skipped."""
    old = read_provenance(metadata)
    if old is None:
        return False
    old = {k: v for k, v in old.items() if k != "tool"}
    return old == json.loads(json.dumps(provenance))
