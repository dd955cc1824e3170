"""Bake DoRA (or LoHa/LoKr) into a plain kohya LoRA, for loaders that mishandle `dora_scale`.

DoRA's update depends on the base weight (W' = m * (W + dW) / ||W + dW||), so it is computed
against the base model, and the full difference W' - W is brought back to a rank-r LoRA by a
truncated SVD (Eckart-Young: the best rank-r approximation in Frobenius norm). The relative
error of that truncation is reported per module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from lorakiln.formats.meta_json import decode_dict

from lorakiln.merge.metadata import modelspec_date
from lorakiln.train.network import merged_weight


@dataclass
class BakeReport:
    rank: int
    errors: dict[str, float] = field(default_factory=dict)  # module -> ||dW - up@down|| / ||dW||

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def mean_error(self) -> float:
        return sum(self.errors.values()) / len(self.errors) if self.errors else 0.0


def svd_lora(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Best rank-r (up, down) with up @ down ~ delta; conv deltas are flattened per output channel.

    Returns kohya shapes: Linear up [out, r], down [r, in]; Conv up [out, r, 1, 1], down [r, in, kh, kw];
    and the relative Frobenius error of the approximation."""
    out_ch = delta.shape[0]
    mat = delta.reshape(out_ch, -1).double()
    r = max(1, min(rank, *mat.shape))
    u, s, vh = torch.linalg.svd(mat, full_matrices=False)
    root = s[:r].sqrt()
    up, down = u[:, :r] * root, root[:, None] * vh[:r]
    norm = mat.norm()
    err = float((mat - up @ down).norm() / norm) if norm > 0 else 0.0
    if delta.ndim == 4:
        up, down = up[:, :, None, None], down.reshape(r, *delta.shape[1:])
    return up.float(), down.float(), err


def bake_network(network, rank: int | None = None) -> tuple[dict[str, torch.Tensor], BakeReport]:
    """Plain-LoRA tensors (lora_down/lora_up/alpha = rank) for every module of an (applied or not) network."""
    rank = rank or network.spec.dim
    report = BakeReport(rank)
    tensors: dict[str, torch.Tensor] = {}
    was_training = network.training
    network.eval()  # no rank dropout while baking
    with torch.no_grad():
        for name, module in network.lora_modules.items():
            base = module.org_module[0].weight.detach().float()
            up, down, err = svd_lora(merged_weight(module) - base, rank)
            tensors[f"{name}.lora_up.weight"] = up
            tensors[f"{name}.lora_down.weight"] = down
            tensors[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))
            report.errors[name] = err
    network.train(was_training)
    return tensors, report


def baked_metadata(metadata: Mapping[str, str], rank: int, conv: bool = False) -> dict[str, str]:
    """The source file's metadata rewritten for a plain networks.lora file of `rank`."""
    meta = dict(metadata)
    args = decode_dict(meta.get("ss_network_args"))  # unreadable (bad or too deeply nested JSON): {}
    for key in ("algo", "dora_wd", "wd_on_output", "factor", "decompose_both", "use_tucker", "conv_dim", "conv_alpha"):
        args.pop(key, None)
    if conv:
        args.update({"conv_dim": str(rank), "conv_alpha": str(float(rank))})
    meta.update({"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(float(rank)),
                 "ss_network_args": json.dumps(args)})
    if not args:
        meta.pop("ss_network_args")
    meta["ss_training_comment"] = (meta.get("ss_training_comment", "") + f" [DoRA baked to rank {rank} LoRA]").strip()
    meta.setdefault("modelspec.title", meta.get("ss_output_name") or "LoRA")
    meta.setdefault("modelspec.sai_model_spec", "1.0.1")
    meta["modelspec.date"] = modelspec_date()  # this file's date, not the source's
    return meta


def bake_file(family, comps, src: Path | str, dst: Path | str, rank: int | None = None) -> BakeReport:
    """Read a DoRA/LyCORIS file, bake it against `comps` (the base it was trained on), write a plain LoRA."""
    from lorakiln.formats.lora_file import write_lora
    from lorakiln.train.network import load_network_file

    network, metadata = load_network_file(family, comps, src)
    tensors, report = bake_network(network, rank)
    conv = any(v.ndim == 4 and v.shape[-1] > 1 for k, v in tensors.items() if k.endswith("lora_down.weight"))
    write_lora(dst, tensors, baked_metadata(metadata, report.rank, conv), dtype=torch.float16)
    return report
