"""Apply LoRAs to a loaded model for sampling, and take them off again exactly.

W' = W + Σᵢ wᵢ·ΔWᵢ on each targeted module (ΔW from formats/lora_model: LoRA, LoCon, LoHa, LoKr,
full; DoRA against the original weight), with the text-encoder and U-Net parts weighted
separately (A1111's `<lora:name:te:unet>`). The original weights are kept (on the CPU) and
copied back when the `applied` block ends, even on error, so a pipeline is never left modified
and the restore is bit-exact. Several LoRAs stack by summing their deltas.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import LoraModel, bias_delta, parse_lora
from lorakiln.merge.delta import module_delta
from lorakiln.train.network_naming import part_of


@dataclass
class LoadedLora:
    """A parsed LoRA file: `alias` is what A1111 calls it (ss_output_name, else the file stem)."""

    path: Path
    alias: str
    model: LoraModel
    metadata: dict[str, str]
    hash: str  # AutoV3 / A1111 LoRA hash (full hex; the infotext uses the first 12)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


def load_lora(path: Path | str, device: torch.device | str = "cpu") -> LoadedLora:
    from lorakiln.formats.lora_file import read_lora, tensor_hash

    path = Path(path)
    tensors, meta = read_lora(path)
    model = parse_lora({k: v.to(device) for k, v in tensors.items()}, source=str(path))
    if not model.modules:
        raise KilnError(f"{path}: no LoRA modules in this file")
    alias = meta.get("ss_output_name") or path.stem
    h = tensor_hash(path)  # from the tensors: an edited file may keep a stale sshs_model_hash
    return LoadedLora(path, alias, model, meta, h)


@dataclass(frozen=True)
class Use:
    """One LoRA at weights for the text encoder(s) and the U-Net."""

    lora: LoadedLora
    te: float = 1.0
    unet: float = 1.0

    def weight_for(self, module_name: str) -> float:
        return self.unet if part_of(module_name) == "unet" else self.te


@dataclass
class PatchReport:
    modules: int = 0  # target modules changed
    unmatched: dict[str, list[str]] = field(default_factory=dict)  # alias -> module names with no target


class LoraPatcher:
    """Patches the modules of one model (family.lora_targets(comps, conv=True, text_encoder=True))."""

    def __init__(self, targets: dict[str, nn.Module]):
        self.targets = targets

    def _check(self, uses: Sequence[Use], report: PatchReport) -> None:
        for u in uses:
            missing = sorted(n for n in u.lora.model.modules if n not in self.targets)
            if missing:
                report.unmatched[u.lora.alias] = missing
            if len(missing) == len(u.lora.model.modules):
                raise KilnError(f"{u.lora.path}: none of its {len(missing)} modules exists in this model "
                                f"(e.g. {missing[0]}); is the LoRA for another base model (SD1.5 vs SDXL)?")

    @contextmanager
    def applied(self, uses: Sequence[Use]) -> Iterator[PatchReport]:
        report = PatchReport()
        uses = [u for u in uses if u.te != 0 or u.unet != 0]
        self._check(uses, report)
        saved: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        try:
            for name in dict.fromkeys(n for u in uses for n in u.lora.model.modules if n in self.targets):
                self._patch(name, uses, saved)
            report.modules = len(saved)
            yield report
        finally:
            self._restore(saved)

    def _patch(self, name: str, uses: Sequence[Use], saved: dict) -> None:
        target = self.targets[name]
        w = target.weight
        bias = getattr(target, "bias", None)
        saved[name] = (w.detach().to("cpu", copy=True), None if bias is None else bias.detach().to("cpu", copy=True))
        base = w.detach().float()
        total = torch.zeros_like(base)
        bias_total = None
        for u in uses:
            m = u.lora.model.modules.get(name)
            weight = u.weight_for(name)
            if m is None or weight == 0:
                continue
            d = module_delta(u.lora.alias, m, tuple(w.shape), lambda _n: base)
            total += weight * d.to(base.device)
            bd = bias_delta(m)
            if bd is not None and bias is not None:
                bias_total = (bias_total if bias_total is not None else torch.zeros_like(bias, dtype=torch.float32))
                bias_total += weight * bd.to(bias.device)
        with torch.no_grad():
            w.copy_((base + total).to(w.dtype))
            if bias_total is not None:
                bias.copy_((bias.float() + bias_total).to(bias.dtype))

    def _restore(self, saved: dict) -> None:
        with torch.no_grad():
            for name, (w, b) in saved.items():
                target = self.targets[name]
                target.weight.copy_(w.to(target.weight.device))
                if b is not None:
                    target.bias.copy_(b.to(target.bias.device))
