"""Metadata for LoRAs lorakiln writes: the minimum kohya keys A1111 and ComfyUI classify by,
ModelSpec's required keys, and provenance (inputs by file name and hash, weights, method).

A1111 shows a LoRA for SDXL only if `ss_base_model_version` starts with "sdxl_" and uses
`ss_output_name` as its alias (reference/eval-merge-formats.md §0.4–5, §3.3–3.4).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from lorakiln import __version__

PROVENANCE_KEY = "lorakiln.provenance"

_ARCH = {
    "sd15": ("sd_v1", "False", "stable-diffusion-v1/lora", "diffusers", "512x512"),
    "sd2": ("sd_v2", "True", "stable-diffusion-v2-512/lora", "diffusers", "512x512"),
    "sdxl": ("sdxl_base_v1-0", "False", "stable-diffusion-xl-v1-base/lora",
             "https://github.com/Stability-AI/generative-models", "1024x1024"),
}
# keys an output inherits from its (first) input when they describe the data, not the tensors
INHERITED = ("ss_tag_frequency", "ss_dataset_dirs", "ss_sd_model_name", "ss_sd_model_hash",
             "ss_new_sd_model_hash", "ss_clip_skip", "modelspec.trigger_phrase", "modelspec.encoder_layer",
             "modelspec.prediction_type", "ss_v_parameterization")


def arch_keys(arch: str, fallback: dict[str, str] | None = None) -> dict[str, str]:
    """ss_base_model_version, ss_v2 and the ModelSpec architecture keys for `arch`."""
    if arch not in _ARCH:
        fb = fallback or {}
        keep = ("ss_base_model_version", "ss_v2", "modelspec.architecture", "modelspec.implementation",
                "modelspec.resolution")
        return {k: fb[k] for k in keep if k in fb}
    version, v2, spec, impl, res = _ARCH[arch]
    return {"ss_base_model_version": version, "ss_v2": v2, "modelspec.architecture": spec,
            "modelspec.implementation": impl, "modelspec.resolution": res}


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
        "modelspec.date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        PROVENANCE_KEY: provenance_value(provenance),
    })
    if merged_from:
        meta["modelspec.merged_from"] = ", ".join(merged_from)
    return meta


def provenance_value(provenance: dict[str, Any]) -> str:
    """The JSON string stored under PROVENANCE_KEY."""
    return json.dumps({"tool": f"lorakiln {__version__}", **provenance}, ensure_ascii=False)


def read_provenance(metadata: dict[str, str]) -> dict[str, Any] | None:
    try:
        value = json.loads(metadata.get(PROVENANCE_KEY, ""))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def same_job(metadata: dict[str, str], provenance: dict[str, Any]) -> bool:
    """True when an existing output was made by the same operation on the same inputs
    (compared without the tool version), so the work can be skipped."""
    old = read_provenance(metadata)
    if old is None:
        return False
    old = {k: v for k, v in old.items() if k != "tool"}
    return old == json.loads(json.dumps(provenance))
