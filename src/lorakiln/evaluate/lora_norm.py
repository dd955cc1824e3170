"""‖ΔW‖ of a LoRA file: whether its weights can change the model at all (a file whose up-weights
are zero adds nothing, whatever its metadata says)."""

from __future__ import annotations

import math
from pathlib import Path

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModule, bias_delta, delta_weight


def _module_sq_norm(m: LoraModule) -> float:
    """‖scale·up·down‖²; for a plain LoRA from the rank x rank Gram matrices (no dense ΔW)."""
    t = m.tensors
    if m.algo == "lora" and "lora_mid.weight" not in t:
        up = t["lora_up.weight"].float().reshape(t["lora_up.weight"].shape[0], -1)
        down = t["lora_down.weight"].float().reshape(t["lora_down.weight"].shape[0], -1)
        sq = float(((up.T @ up) * (down @ down.T)).sum()) * m.scale ** 2
    else:
        sq = float(delta_weight(m).norm()) ** 2
    b = bias_delta(m)
    return max(sq, 0.0) + (float(b.norm()) ** 2 if b is not None else 0.0)


def delta_norm(path: Path) -> float | None:
    """Frobenius norm of every module's ΔW together; None when it cannot tell (DoRA rescales the
    weight even with ΔW = 0, or the file cannot be parsed)."""
    from lorakiln.formats.lora_file import read_lora
    from lorakiln.formats.lora_model import parse_lora

    try:
        tensors, _ = read_lora(path)
        model = parse_lora(tensors, Path(path).name)
    except (KilnError, OSError):
        return None
    if model.has_dora():
        return None
    try:
        total = sum(_module_sq_norm(m) for m in model.modules.values())
    except (KilnError, RuntimeError):
        return None
    return math.sqrt(total) if math.isfinite(total) else None

