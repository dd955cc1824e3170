"""Reading kohya/LyCORIS LoRA files back into a network: infer algo and ranks, rebuild module by
module (kohya --dim_from_weights), or load into a network built from settings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.train.network import LoRANetwork, NetworkSpec, create_network


def infer_spec(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> NetworkSpec:
    """algo, dims and alphas of a kohya/LyCORIS file (the most common value over its modules)."""
    suffixes = {k.partition(".")[2] for k in tensors}
    algo = "lokr" if any(s.startswith("lokr_") for s in suffixes) else \
        "loha" if any(s.startswith("hada_") for s in suffixes) else "lora"
    if algo == "lora" and "lora_down.weight" not in suffixes:
        raise KilnError("not a LoRA/LyCORIS file: no lora_down / hada_ / lokr_ tensors")
    linear, conv = Counter(), Counter()
    for key, value in tensors.items():
        name, _, sub = key.partition(".")
        rank = _rank_of(sub, value)
        if rank is None:
            continue
        alpha = tensors.get(f"{name}.alpha")
        alpha_v = float(alpha) if alpha is not None else float(rank)
        (conv if value.ndim == 4 and tuple(value.shape[-2:]) != (1, 1) else linear)[(rank, alpha_v)] += 1
    dim, alpha = linear.most_common(1)[0][0] if linear else (1, 1.0)
    conv_dim, conv_alpha = conv.most_common(1)[0][0] if conv else (None, None)
    te = any(k.startswith("lora_te") for k in tensors)
    dora = any(s == "dora_scale" for s in suffixes)
    if metadata and metadata.get("ss_network_dim") not in (None, "Dynamic") and not linear:
        dim = int(metadata["ss_network_dim"])
    return NetworkSpec(algo="locon" if algo == "lora" and conv else algo, dim=dim, alpha=alpha, conv_dim=conv_dim,
                       conv_alpha=conv_alpha, dora=dora, text_encoder=te)


def _rank_of(sub: str, value: torch.Tensor) -> int | None:
    if sub == "lora_down.weight":
        return value.shape[0]
    if sub == "hada_w1_b":
        return value.shape[0]
    if sub in ("lokr_w1_a", "lokr_w2_a"):
        return value.shape[1]
    return None


def create_network_from_weights(family, comps, tensors: Mapping[str, torch.Tensor], spec: NetworkSpec | None = None,
                                *, where: str | Path = "LoRA") -> LoRANetwork:
    """A network shaped like the file, module by module (kohya --dim_from_weights), weights loaded.

    Dropouts come from `spec`; algo, ranks, alphas, Tucker and DoRA come from the file."""
    from lycoris.modules import get_module, make_module

    inferred = infer_spec(tensors)
    spec = spec or inferred
    names = {k.partition(".")[0] for k in tensors}
    targets = family.lora_targets(comps, conv=True, text_encoder=True)
    unknown = sorted(names - set(targets))
    if unknown:
        raise ConfigError(where, f"{len(unknown)} modules are not in a {family.name} model (e.g. {unknown[0]}); "
                                 "is the file for another model family?")
    device = next(comps.unet.parameters()).device
    modules: dict[str, nn.Module] = {}
    for name in sorted(names, key=list(targets).index):
        sub = {k: v for k, v in tensors.items() if k.startswith(name + ".")}
        if f"{name}.alpha" not in sub:
            rank = next(r for k, v in sub.items() if (r := _rank_of(k.partition(".")[2], v)) is not None)
            sub[f"{name}.alpha"] = torch.tensor(float(rank))
        dora = sub.pop(f"{name}.dora_scale", None)
        kind, params = get_module(sub, name)
        module = make_module(kind, params, name, targets[name]) if kind is not None else None
        if module is None:
            raise ConfigError(where, f"{name}: cannot rebuild an adapter module from keys {sorted(sub)}")
        module = _with_training_options(module.float(), spec)
        if dora is not None:
            _enable_dora(module, dora)
            inferred.dora_on_output = module.wd_on_out
        modules[name] = module.to(device)
    file_spec = NetworkSpec(**{**inferred.__dict__, "dropout": spec.dropout, "rank_dropout": spec.rank_dropout,
                               "module_dropout": spec.module_dropout})
    return LoRANetwork(modules, file_spec, family.arch)


def _enable_dora(module: nn.Module, scale: torch.Tensor) -> None:
    """Turn a rebuilt module into its DoRA form with the file's magnitudes; the axis (per output
    channel, LyCORIS' default, or per input column as A1111 does) is read from the tensor's shape."""
    weight = module.org_module[0].weight
    module.wd = True
    module.wd_on_out = scale.shape[0] == weight.shape[0] and (scale.ndim < 2 or scale.shape[1] == 1)
    module.dora_norm_dims = weight.dim() - 1
    module.dora_scale = nn.Parameter(scale.detach().float().clone())
    module.bypass_mode = False


def _with_training_options(module: nn.Module, spec: NetworkSpec) -> nn.Module:
    module.rank_dropout = spec.rank_dropout
    module.module_dropout = spec.module_dropout
    if isinstance(getattr(module, "dropout", None), nn.Module):
        module.dropout = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
    if type(module).__name__ == "LoConModule" and not getattr(module, "wd", False):
        module.bypass_mode = True
    return module


def load_network_file(family, comps, path: Path | str, spec: NetworkSpec | None = None,
                      *, dim_from_weights: bool = True) -> tuple[LoRANetwork, dict[str, str]]:
    """Continue from a LoRA file: shaped like the file (default) or `spec`'s network with the file's weights."""
    from lorakiln.formats.lora_file import read_lora

    tensors, metadata = read_lora(path)
    if dim_from_weights or spec is None:
        return create_network_from_weights(family, comps, tensors, spec, where=path), metadata
    net = create_network(family, comps, spec)
    net.load_kohya_state_dict(tensors, where=path, strict=False)
    return net, metadata
