"""A LoRA from the difference of two checkpoints (tuned − base), kohya's extract_lora_from_models.

Per target weight: ΔW = tuned − base in float32, truncated SVD to `rank` (`conv_rank` for k×k
convs; the conv group is extracted only when conv_rank is given, as kohya does), alpha = rank,
optional quantile clamp. If no text-encoder weight differs by more than `min_diff`, the text
encoder is left out ("U-Net only"), as kohya's --min_diff does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lorakiln.merge.checkpoint_keys import Target
from lorakiln.merge.combine import RankPolicy, refactor
from lorakiln.merge.report import ModuleReport


@dataclass
class Extraction:
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    reports: list[ModuleReport] = field(default_factory=list)
    te: dict[str, torch.Tensor] = field(default_factory=dict)  # held back until min_diff is known
    te_reports: list[ModuleReport] = field(default_factory=list)
    te_max_diff: float = 0.0
    unchanged: int = 0


def wanted(target: Target, policy: RankPolicy) -> bool:
    """kohya's targets: attention/feed-forward and text encoder always; resnet/sampler convs
    only with a conv rank."""
    return target.group != "conv" or policy.conv_rank is not None


def extract_module(ex: Extraction, target: Target, tuned: torch.Tensor, base: torch.Tensor,
                   policy: RankPolicy, dtype: torch.dtype) -> None:
    diff = (tuned.to(torch.float32) - base.to(torch.float32)).reshape(target.shape)
    peak = float(diff.abs().max()) if diff.numel() else 0.0
    if target.group == "te":
        ex.te_max_diff = max(ex.te_max_diff, peak)
    if peak == 0.0:
        ex.unchanged += 1
        return
    tensors, rep = refactor(target.name, diff, None, target.shape, policy, dtype)
    (ex.te if target.group == "te" else ex.tensors).update(tensors)
    (ex.te_reports if target.group == "te" else ex.reports).append(rep)


def finish(ex: Extraction, min_diff: float) -> tuple[dict[str, torch.Tensor], list[ModuleReport], bool]:
    """(tensors, reports, text encoder kept?)."""
    keep_te = ex.te_max_diff > min_diff
    if keep_te:
        return {**ex.te, **ex.tensors}, ex.te_reports + ex.reports, True
    return dict(ex.tensors), list(ex.reports), False
