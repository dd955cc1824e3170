"""LoRA / LoCon / LoHa / LoKr (+ DoRA) networks on a family's components, kohya-format in and out.

The adapter math is LyCORIS's (module classes created with kohya's names and applied with
`apply_to()`, as LycorisNetworkKohya does); the names, targets and metadata are ours, so the
file matches what kohya's networks.lora / lycoris.kohya write for the same architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lorakiln.core.errors import ConfigError
from lorakiln.core.registry import Registry
from lorakiln.train.network_naming import is_conv3x3, part_of


@dataclass(frozen=True)
class Algo:
    name: str
    module: str  # LyCORIS module class name
    network_module: str  # ss_network_module
    conv_by_default: bool = False
    notes: str = ""


ALGOS: Registry[Algo] = Registry("adapter algorithm")
ALGOS.register("lora", Algo("lora", "LoConModule", "networks.lora", notes="kohya LoRA: Linear + 1x1 conv"))
ALGOS.register("locon", Algo("locon", "LoConModule", "networks.lora", True, "LoRA + 3x3 convs (kohya conv_dim)"))
ALGOS.register("loha", Algo("loha", "LohaModule", "lycoris.kohya", notes="LyCORIS Hadamard product"))
ALGOS.register("lokr", Algo("lokr", "LokrModule", "lycoris.kohya", notes="LyCORIS Kronecker product"))

# LyCORIS keyword arguments users may pass through network_args (kohya --network_args)
PASSTHROUGH_ARGS = {"use_tucker", "use_scalar", "rank_dropout_scale", "rs_lora", "factor", "decompose_both",
                    "full_matrix", "unbalanced_factorization"}
_INT_ARGS = {"factor"}


def _coerce(key: str, value: Any) -> Any:
    """kohya network_args arrive as strings ("factor=8", "use_tucker=False")."""
    if key in _INT_ARGS:
        return int(value)
    if isinstance(value, str):
        if value.strip().lower() in ("false", "0", "no", "off", ""):
            return False
        if value.strip().lower() in ("true", "1", "yes", "on"):
            return True
    return bool(value)


@dataclass
class NetworkSpec:
    """What to build; mirrors [train.network] (kohya's network_* options)."""

    algo: str = "lora"
    dim: int = 16
    alpha: float = 8.0
    conv_dim: int | None = None
    conv_alpha: float | None = None
    dora: bool = False
    dora_on_output: bool = True  # LyCORIS wd_on_out: magnitude per output channel (its default since 3.2)
    dropout: float = 0.0
    rank_dropout: float = 0.0
    module_dropout: float = 0.0
    text_encoder: bool = True
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg) -> "NetworkSpec":
        """From a [train.network] section (NetworkConfig) or anything with the same field names."""
        args = dict(getattr(cfg, "network_args", {}) or {})
        return cls(algo=cfg.algo, dim=cfg.network_dim, alpha=cfg.network_alpha, conv_dim=cfg.conv_dim,
                   conv_alpha=cfg.conv_alpha, dora=bool(getattr(cfg, "dora_wd", False)),
                   dora_on_output=_coerce("wd_on_output", args.pop("wd_on_output", True)), dropout=cfg.network_dropout,
                   rank_dropout=cfg.rank_dropout, module_dropout=cfg.module_dropout,
                   text_encoder=not getattr(cfg, "network_train_unet_only", False), args=args)

    def conv_rank(self) -> tuple[int, float] | None:
        """(conv_dim, conv_alpha) for 3x3 convs, or None when convs are not adapted."""
        dim = self.conv_dim or (self.dim if ALGOS.get(self.algo).conv_by_default else None)
        if not dim:
            return None
        # kohya's networks.lora and LyCORIS default conv_alpha to 1 when conv_dim is given
        return dim, self.conv_alpha or (self.alpha if self.conv_dim is None else 1.0)

    def network_module(self) -> str:
        return "lycoris.kohya" if self.dora else ALGOS.get(self.algo).network_module

    def network_args(self) -> dict[str, str]:
        """ss_network_args as kohya stores them (string values)."""
        out: dict[str, str] = {}
        conv = self.conv_rank()
        if self.network_module() == "lycoris.kohya":
            out["algo"] = "lora" if self.algo == "locon" else self.algo
        if conv:
            out["conv_dim"], out["conv_alpha"] = str(conv[0]), _num(conv[1])
        if self.dora:
            out["dora_wd"] = "True"
            out["wd_on_output"] = str(self.dora_on_output)
        if self.rank_dropout:
            out["rank_dropout"] = str(self.rank_dropout)
        if self.module_dropout:
            out["module_dropout"] = str(self.module_dropout)
        out.update({k: str(v) for k, v in self.args.items() if k in PASSTHROUGH_ARGS})
        return out


def _num(x: float) -> str:
    return str(float(x))


def _lycoris_class(name: str):
    import lycoris.modules as lm

    return getattr(lm, name)


def _module_kwargs(spec: NetworkSpec, dim: int, alpha: float) -> dict[str, Any]:
    kw = dict(multiplier=1.0, lora_dim=dim, alpha=alpha, dropout=spec.dropout, rank_dropout=spec.rank_dropout,
              module_dropout=spec.module_dropout, weight_decompose=spec.dora, wd_on_out=spec.dora_on_output)
    unknown = set(spec.args) - PASSTHROUGH_ARGS - {"wd_on_output"}
    if unknown:
        raise ConfigError("network_args", f"unknown adapter options {sorted(unknown)}; known: {sorted(PASSTHROUGH_ARGS)}")
    kw.update({k: _coerce(k, v) for k, v in spec.args.items() if k in PASSTHROUGH_ARGS})
    if spec.algo in ("lora", "locon"):
        kw["bypass_mode"] = not spec.dora  # x -> down -> up, like kohya; DoRA needs the rebuilt weight
    return kw


class LoRANetwork(nn.Module):
    """kohya-named adapter modules over a family's U-Net and text encoders."""

    def __init__(self, modules: Mapping[str, nn.Module], spec: NetworkSpec, arch: str):
        super().__init__()
        self.lora_modules = nn.ModuleDict(dict(modules))
        self.spec = spec
        self.arch = arch
        self.applied = False

    # -- lifecycle --------------------------------------------------------------------------
    def apply_to(self) -> "LoRANetwork":
        """Route each target module's forward through its adapter (idempotent)."""
        if not self.applied:
            for m in self.lora_modules.values():
                m.apply_to()
            self.applied = True
        return self

    def restore(self) -> None:
        """Give the base modules back their own forward."""
        if self.applied:
            for m in reversed(list(self.lora_modules.values())):
                m.restore()
            self.applied = False

    def set_multiplier(self, value: float) -> None:
        for m in self.lora_modules.values():
            m.multiplier = value

    def names(self, part: str | None = None) -> list[str]:
        return [n for n in self.lora_modules if part is None or part_of(n) == part]

    def parts(self) -> list[str]:
        """'te'/'te1'/'te2' then 'unet', for the parts that have modules."""
        seen = dict.fromkeys(part_of(n) for n in self.lora_modules)
        return sorted(seen, key=lambda p: (p == "unet", p))

    # -- training ----------------------------------------------------------------------------
    def param_groups(self, unet_lr: float | None, text_encoder_lr: float | list[float] | None,
                     learning_rate: float) -> list[dict[str, Any]]:
        """One optimizer group per part ("unet", "te" or "te1"/"te2") with its learning rate.

        `text_encoder_lr` may be one value or one per text encoder; None uses learning_rate.
        A part whose rate is 0 gets no group and is frozen."""
        te_parts = [p for p in self.parts() if p != "unet"]
        if isinstance(text_encoder_lr, (list, tuple)):
            if len(text_encoder_lr) not in (1, len(te_parts)):
                raise ConfigError("text_encoder_lr", f"{len(text_encoder_lr)} values for {len(te_parts)} text encoders")
            te_lrs = dict(zip(te_parts, list(text_encoder_lr) * len(te_parts)))
        else:
            te_lrs = dict.fromkeys(te_parts, text_encoder_lr)
        lrs = {**te_lrs, "unet": unet_lr}
        groups = []
        for part in self.parts():
            lr = learning_rate if lrs.get(part) is None else lrs[part]
            params = [p for n in self.names(part) for p in self.lora_modules[n].parameters()]
            self.freeze(part, frozen=(lr == 0))
            if lr and params:
                groups.append({"name": part, "params": params, "lr": lr})
        return groups

    def freeze(self, part: str, frozen: bool = True) -> None:
        for n in self.names(part):
            self.lora_modules[n].requires_grad_(not frozen)

    def stop_text_encoder_training(self) -> list[str]:
        """Freeze every text-encoder adapter (kohya --stop_text_encoder_training); returns the parts frozen.
        The frozen parameters get no gradients, so optimizers skip them."""
        parts = [p for p in self.parts() if p != "unet"]
        for p in parts:
            self.freeze(p)
            for n in self.names(p):
                self.lora_modules[n].eval()
        return parts

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- kohya state ---------------------------------------------------------------------------
    def kohya_state_dict(self) -> dict[str, torch.Tensor]:
        """`<lora_name>.<key>` tensors exactly as written to the file (alpha 0-d)."""
        out: dict[str, torch.Tensor] = {}
        for name, m in self.lora_modules.items():
            for key, value in m.state_dict().items():
                out[f"{name}.{key}"] = value.detach()
        return out

    def load_kohya_state_dict(self, tensors: Mapping[str, torch.Tensor], *, where: str | Path = "LoRA",
                              strict: bool = True) -> list[str]:
        """Copy weights in; names and shapes must match (clear error otherwise). Returns the names loaded."""
        by_module: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            name, _, sub = key.partition(".")
            by_module.setdefault(name, {})[sub] = value
        unknown = sorted(set(by_module) - set(self.lora_modules))
        if unknown:
            raise ConfigError(where, f"{len(unknown)} modules do not exist in this network (e.g. {unknown[0]}); "
                                     "is the file for another model family or adapter type?")
        missing = sorted(set(self.lora_modules) - set(by_module))
        if strict and missing:
            raise ConfigError(where, f"has no weights for {len(missing)} modules of this network (e.g. {missing[0]})")
        for name, sub in by_module.items():
            _load_module(self.lora_modules[name], sub, name, where)
        return sorted(by_module)

    def metadata(self, family, comps=None, *, clip_skip: int | None = None, title: str = "LoRA") -> dict[str, str]:
        """Adapter + base-model metadata keys (all strings); training keys are added by the caller.

        Includes the ModelSpec keys kohya always writes (title, date made), so any file saved
        with these keys carries them; `kiln train` overrides the title with the output name."""
        from lorakiln.merge.metadata import modelspec_date

        spec = self.spec
        meta = {"ss_network_module": spec.network_module(), "ss_network_dim": str(spec.dim),
                "ss_network_alpha": _num(spec.alpha), "ss_network_dropout": str(float(spec.dropout)),
                "modelspec.sai_model_spec": "1.0.1", "modelspec.title": title,
                "modelspec.date": modelspec_date()}
        args = spec.network_args()
        if args:
            meta["ss_network_args"] = json.dumps(args)
        meta.update(family.metadata(comps, clip_skip=clip_skip))
        if clip_skip is not None:
            meta["ss_clip_skip"] = str(clip_skip)
        return meta

    def save(self, path: Path | str, metadata: Mapping[str, Any], dtype: torch.dtype | None = torch.float16) -> None:
        """Write a kohya-format .safetensors atomically (sshs hashes computed by formats.lora_file)."""
        from lorakiln.formats.lora_file import write_lora

        write_lora(path, self.kohya_state_dict(), metadata, dtype=dtype)


def delta_weight(module: nn.Module) -> torch.Tensor:
    """The module's weight update exactly as its forward applies it and as kohya/A1111/ComfyUI read
    the file: LoRA up@down*alpha/r, LoHa (w1a@w1b)*(w2a@w2b)*alpha/r, LoKr kron(w1, w2)*alpha/r.

    LyCORIS 4.1.3's get_diff_weight/get_merged_weight/merge_to apply alpha/r twice for LoHa and
    LoKr, so merges and bakes use this instead. Call in eval mode (rank dropout off)."""
    shape = module.org_module[0].weight.shape
    if type(module).__name__ == "LoConModule":
        return (module.make_weight() * module.scale).reshape(shape)
    return (module.get_weight(module.shape) * module.scalar).reshape(shape)


def merged_weight(module: nn.Module, multiplier: float = 1.0) -> torch.Tensor:
    """Base weight with the update merged (float32); DoRA renormalised against the base as in forward."""
    base = module.org_module[0].weight.detach().float()
    delta = delta_weight(module).float().to(base.device)
    if getattr(module, "wd", False):
        return module.apply_weight_decompose(base + delta, multiplier).float()
    return base + delta * multiplier


def _load_module(module: nn.Module, sub: Mapping[str, torch.Tensor], name: str, where) -> None:
    own = module.state_dict()
    for key, value in sub.items():
        if key not in own:
            raise ConfigError(where, f"{name}.{key} is not a weight of this {type(module).__name__} "
                                     f"(it has {sorted(own)}); the file uses another adapter type")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ConfigError(where, f"{name}.{key} has shape {list(value.shape)}, the network expects "
                                     f"{list(own[key].shape)}; create the network from the file's dims instead")
    module.load_state_dict({**own, **sub}, strict=False)
    if "lora_up.weight" in sub and hasattr(module, "scalar") and not isinstance(module.scalar, nn.Parameter):
        module.scalar.fill_(1.0)  # custom_state_dict folds the scalar into lora_up
    if "alpha" in sub:  # LyCORIS fixes scale = alpha / rank at construction; the stored alpha is alpha*rank/r_factor
        module.scale = float(sub["alpha"]) / module.lora_dim


def create_network(family, comps, spec: NetworkSpec, *, seed: int | None = None) -> LoRANetwork:
    """A fresh network (down/A kaiming-initialised, up/B zero: the model starts unchanged)."""
    ALGOS.get(spec.algo)
    conv = spec.conv_rank()
    targets = family.lora_targets(comps, conv=conv is not None, text_encoder=spec.text_encoder)
    cls = _lycoris_class(ALGOS.get(spec.algo).module)
    device = next(comps.unet.parameters()).device
    modules: dict[str, nn.Module] = {}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        for name, target in targets.items():
            dim, alpha = conv if is_conv3x3(target) else (spec.dim, spec.alpha)
            modules[name] = cls(name, target, **_module_kwargs(spec, dim, alpha)).to(device)
    return LoRANetwork(modules, spec, family.arch)


# -- what training would create ---------------------------------------------------------------

def planned_modules(family, spec: NetworkSpec, comps=None) -> dict[str, tuple[str, int, float]]:
    """kohya name -> (kind, rank, alpha) that `create_network` would build, from the architecture alone.

    kind is "linear", "conv1x1" or "conv3x3"; `comps` defaults to the family built on the meta device."""
    comps = comps or family.build_empty("meta")
    conv = spec.conv_rank()
    targets = family.lora_targets(comps, conv=conv is not None, text_encoder=spec.text_encoder)
    out = {}
    for name, module in targets.items():
        if is_conv3x3(module):
            out[name] = ("conv3x3", *conv)
        else:
            out[name] = ("conv1x1" if isinstance(module, nn.Conv2d) else "linear", spec.dim, spec.alpha)
    return out


def planned_tensors(family, spec: NetworkSpec, comps=None) -> dict[str, tuple[int, ...]]:
    """Every tensor key the file would hold, with its shape (the adapters of a meta-device model)."""
    comps = comps or family.build_empty("meta")
    net = create_network(family, comps, spec)
    return {k: tuple(v.shape) for k, v in net.kohya_state_dict().items()}


# reading kohya/LyCORIS files lives in network_io.py; re-exported here as part of this API
from lorakiln.train.network_io import (  # noqa: E402
    create_network_from_weights,
    infer_spec,
    load_network_file,
)

__all__ = ["ALGOS", "Algo", "NetworkSpec", "LoRANetwork", "create_network", "create_network_from_weights",
           "infer_spec", "load_network_file", "delta_weight", "merged_weight", "planned_modules", "planned_tensors"]
