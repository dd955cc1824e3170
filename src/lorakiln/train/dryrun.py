"""`kiln train --dry-run`: the step arithmetic per subset and a memory estimate.

The arithmetic is the seeds' tables (images x repeats x epochs / batch = steps) next to the
exact count with buckets (a partly filled bucket still costs a whole batch, as in kohya).
The memory estimate counts parameters, gradients and optimizer state exactly, and measures
activations by running the U-Net forward on the meta device (no memory, no compute) and adding
up the tensors autograd keeps for backward. Attention score matrices are left out (SDPA's fused
kernels do not keep them on a GPU). It is an estimate: allocator overhead and the CUDA context
(about 0.5-1 GB) come on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lorakiln.train.batches import batches_per_epoch

GB = 1024**3
DTYPE_BYTES = {"no": 4, "fp16": 2, "bf16": 2}


@dataclass
class SubsetRow:
    dataset: int
    name: str
    images: int
    repeats: int
    is_reg: bool

    @property
    def samples(self) -> int:
        return self.images * self.repeats


@dataclass
class StepsTable:
    rows: list[SubsetRow]
    batch_sizes: list[int]
    epochs: int
    grad_accum: int
    batches_per_epoch: int  # with buckets, all datasets
    steps_per_epoch: int
    total_steps: int
    max_train_steps: int | None = None

    def samples(self, dataset: int | None = None, reg: bool | None = None) -> int:
        return sum(r.samples for r in self.rows if (dataset is None or r.dataset == dataset)
                   and (reg is None or r.is_reg == reg))

    def lines(self) -> list[str]:
        out = []
        for r in self.rows:
            kind = " (regularisation)" if r.is_reg else ""
            out.append(f"{r.name}{kind}: {r.images} images x {r.repeats} repeats = {r.samples}")
        for d, bs in enumerate(self.batch_sizes):
            train = self.samples(d, reg=False)
            reg = train if self.samples(d, reg=True) else 0  # regularisation fills as many samples as training
            total = train + reg
            simple = math.ceil(total * self.epochs / bs)
            extra = f" (+{reg} regularisation)" if reg else ""
            out.append(f"{train}{extra} samples x {self.epochs} epochs / batch {bs} = {simple} steps")
        ga = f" / {self.grad_accum} accumulation" if self.grad_accum > 1 else ""
        out.append(f"with aspect buckets: {self.batches_per_epoch} batches per epoch{ga} = {self.steps_per_epoch} steps "
                   f"per epoch x {self.epochs} epochs = {self.steps_per_epoch * self.epochs} steps")
        if self.max_train_steps and self.max_train_steps < self.steps_per_epoch * self.epochs:
            out.append(f"stopped early by max_train_steps = {self.max_train_steps}")
        return out


def steps_table(datasets: list, epochs: int, grad_accum: int = 1, max_train_steps: int | None = None,
                world: int = 1) -> StepsTable:
    rows = []
    for d, scanned in enumerate(datasets):
        for i, sub in enumerate(scanned.spec.subsets):
            rows.append(SubsetRow(d, sub.name, len(scanned.subset_items(i)), sub.num_repeats, sub.is_reg))
    bpe = batches_per_epoch(datasets)
    per_epoch = math.ceil(math.ceil(bpe / world) / grad_accum)
    total = per_epoch * epochs
    if max_train_steps:
        total = min(total, max_train_steps)
    return StepsTable(rows, [s.spec.batch_size for s in datasets], epochs, grad_accum, bpe, per_epoch, total,
                      max_train_steps)


@dataclass
class MemoryEstimate:
    parts: dict[str, float] = field(default_factory=dict)  # name -> bytes
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def lines(self) -> list[str]:
        out = [f"{k}: {v / GB:.2f} GB" for k, v in self.parts.items()]
        out.append(f"total (estimate): {self.total / GB:.1f} GB, plus allocator overhead and the CUDA context")
        return out + self.notes


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure_activations(family, comps, resolution: tuple[int, int], dtype: torch.dtype) -> int:
    """Bytes autograd keeps for backward in one U-Net forward at batch 1 (comps on the meta device)."""
    from lorakiln.train.families.base import Conditioning

    lh, lw = resolution[1] // 8, resolution[0] // 8
    kept: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.nn.Parameter) or isinstance(t._base, torch.nn.Parameter):
            return t  # weights are counted as parameters
        if t.ndim >= 2 and t.shape[-1] == t.shape[-2] and t.shape[-1] > max(lh, lw):
            return t  # attention scores: not kept by fused SDPA kernels
        kept[id(t)] = t.numel() * t.element_size()
        return t

    unet = comps.unet
    ctx = unet.config.cross_attention_dim
    z = torch.zeros(1, unet.config.in_channels, lh, lw, device="meta", dtype=dtype)
    hidden = torch.zeros(1, 77, ctx, device="meta", dtype=dtype)
    pooled = time_ids = None
    if getattr(unet.config, "addition_embed_type", None) == "text_time":
        pooled = torch.zeros(1, unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim,
                             device="meta", dtype=dtype)
        time_ids = torch.zeros(1, 6, device="meta", dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        family.predict(comps, z, torch.zeros(1, dtype=torch.long, device="meta"), Conditioning(hidden, pooled, time_ids))
    return sum(kept.values())


def estimate_memory(family, network_spec, *, resolution: tuple[int, int], batch_size: int, precision: str,
                    gradient_checkpointing: bool, optimizer_state: float, cache_latents: bool,
                    train_text_encoder: bool, full_bf16: bool = False) -> MemoryEstimate:
    """Rough training memory for one device (see the module docstring for what is measured)."""
    from lorakiln.train.network import create_network

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    comps = family.build_empty("meta")
    spec = network_spec
    net = create_network(family, comps, spec)
    net.apply_to()
    for p in comps.unet.parameters():  # not .to(): diffusers warns about fp32-only modules there
        p.data = p.data.to(dtype)
    wbytes = DTYPE_BYTES.get(precision, 4)
    est = MemoryEstimate()
    est.parts["U-Net weights"] = _numel(comps.unet) * wbytes
    est.parts["text encoder weights"] = sum(_numel(te) for te in comps.text_encoders) * wbytes
    vae_note = " (freed after caching latents)" if cache_latents else ""
    est.parts["VAE weights" + vae_note] = 0 if cache_latents else _numel(comps.vae) * 4
    lora = sum(p.numel() for n in net.names() for p in net.lora_modules[n].parameters()
               if train_text_encoder or n.startswith("lora_unet"))
    pbytes = 2 if full_bf16 else 4
    est.parts["adapter weights + gradients"] = lora * pbytes * 2
    est.parts["optimizer state"] = lora * 4 * optimizer_state
    comps.unet.train()
    if gradient_checkpointing:
        comps.unet.enable_gradient_checkpointing()
    act = measure_activations(family, comps, resolution, dtype)
    if gradient_checkpointing:  # one block is recomputed at a time during backward
        comps.unet.disable_gradient_checkpointing()
        full = measure_activations(family, comps, resolution, dtype)
        blocks = len(comps.unet.down_blocks) + len(comps.unet.up_blocks) + 1
        act += full / blocks
    est.parts[f"activations (batch {batch_size}, {resolution[0]}x{resolution[1]})"] = act * batch_size
    if train_text_encoder:
        est.notes.append("text-encoder activations are small and not counted")
    return est
