"""Which loaders apply a LoRA file exactly, module by module (rules in formats/loaders.py).

Used by `kiln info`, the card, and `kiln lora convert` (which rewrites exactly the modules its
target would apply wrongly). DoRA modules are judged on the real base weight when one is given,
else on a probe weight (loaders.probe_weight): whether a loader's DoRA rule is right does not
depend on the base, only how wrong it is does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.loaders import LOADERS, TARGETS, Verdict, module_verdict
from lorakiln.formats.lora_model import LoraModel, LoraModule, conv_shape, delta_weight
from lorakiln.merge.delta import BaseLookup

SHOWN = ("comfyui", "a1111", "forge", "diffusers")  # the order info and the card list them in


def _delta(module: LoraModule, base_w: torch.Tensor | None) -> torch.Tensor:
    shape = tuple(base_w.shape) if base_w is not None else conv_shape(module.name, module.shape)
    return delta_weight(module, shape)


def module_verdicts(module: LoraModule, loaders: tuple[str, ...], base: BaseLookup | None = None) -> dict[str, Verdict]:
    """Each loader's verdict on one module; ΔW is built only when a loader loads it and it is DoRA."""
    out: dict[str, Verdict] = {}
    delta = None
    for name in loaders:
        loader = LOADERS.get(name)
        if loader.loads(module) or module.dora_scale is None:
            out[name] = module_verdict(loader, module, torch.empty(0))
            continue
        w = base(module.name) if base else None
        if delta is None:
            try:
                delta = _delta(module, w)
            except KilnError as e:
                out[name] = Verdict(False, f"cannot be checked: {e}")
                continue
        out[name] = module_verdict(loader, module, delta, w)
    return out


NOTHING_TO_APPLY = "No LoRA modules: nothing to apply."


def loader_report(model: LoraModel, base: BaseLookup | None = None,
                  loaders: tuple[str, ...] = SHOWN) -> dict[str, dict[str, Any]]:
    """Per loader: exact (bool), modules applied exactly / total, the reasons for the others
    (reason -> module count), the worst measured error, and modules no loader reads. A file
    with no LoRA modules applies nothing anywhere: {} (never "exact")."""
    if not model.modules:
        return {}
    tallies = {n: {"exact_modules": 0, "reasons": Counter(), "error_max": None} for n in loaders}
    for module in model.modules.values():
        for name, v in module_verdicts(module, loaders, base).items():
            t = tallies[name]
            if v.exact:
                t["exact_modules"] += 1
            else:
                t["reasons"][v.reason] += 1
                if v.error is not None:
                    t["error_max"] = max(t["error_max"] or 0.0, v.error)
    total = len(model.modules)
    report = {}
    for name, t in tallies.items():
        report[name] = {"label": LOADERS.get(name).label, "exact": t["exact_modules"] == total and not model.ignored,
                        "modules": total, "exact_modules": t["exact_modules"], "reasons": dict(t["reasons"]),
                        "error_max": t["error_max"], "ignored_keys": len(model.ignored)}
    return report


def loaders_line(report: dict[str, dict[str, Any]]) -> str:
    """One sentence for the card and info: who applies the file exactly, who does not and why."""
    if not report:
        return NOTHING_TO_APPLY
    good = [r["label"] for r in report.values() if r["exact"]]
    bad = [f"{r['label']} ({_why(r)})" for r in report.values() if not r["exact"]]
    if not bad:
        return f"Applies exactly in {', '.join(good)}."
    lead = f"Applies exactly in {', '.join(good)}; not in " if good else "Applies exactly in none of the checked loaders: "
    return lead + "; ".join(bad) + ". `kiln lora convert FILE OUT --target NAME` writes a version that does."


def _why(r: dict[str, Any]) -> str:
    if r["reasons"]:
        reason, n = max(r["reasons"].items(), key=lambda kv: kv[1])
        return f"{reason}: {n} of {r['modules']} modules"
    return f"{r['ignored_keys']} keys of unsupported kinds are not loaded"


def target_exact(verdicts: dict[str, Verdict], target: str) -> bool:
    return all(verdicts[n].exact for n in TARGETS[target])
