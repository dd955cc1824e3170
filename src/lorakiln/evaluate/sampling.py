"""Generate images from a family's diffusers pipeline with LoRAs applied, in batches, reproducibly.

Prompts are encoded by the family's own encoder (the same text path as training: clip skip,
75-token windows for long prompts) with A1111 emphasis applied on top, then handed to the
pipeline as embeddings. Every image has its own seeded CPU generator, so an image depends on
its seed, never on its batch neighbours or the device: the same seed gives the same starting
noise in every grid cell, every checkpoint and on the base model (paired comparisons).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.apply_lora import LoadedLora, LoraPatcher, Use, load_lora
from lorakiln.evaluate.prompts import has_emphasis, parse_attention, plain_text
from lorakiln.train.families.base import Conditioning
from lorakiln.train.families.prompts import ALLOWED_LENGTHS, WINDOW


@dataclass(frozen=True)
class LoraSpec:
    path: str
    te: float = 1.0
    unet: float = 1.0


@dataclass(frozen=True)
class Settings:
    """What every image of one batch shares."""

    sampler: str = "euler_a"
    steps: int = 20
    cfg: float = 7.0
    width: int = 512
    height: int = 512
    clip_skip: int = 1
    loras: tuple[LoraSpec, ...] = ()


@dataclass(frozen=True)
class Job:
    prompt: str  # LoRA tags already taken out; emphasis allowed
    negative: str
    seed: int
    settings: Settings


# -- prompt encoding ---------------------------------------------------------------------------

def token_weights(tokenizer, prompt: str) -> tuple[str, list[float]]:
    """(plain text, one weight per text token) from A1111 emphasis."""
    segs = parse_attention(prompt)
    weights: list[float] = []
    for text, w in segs:
        weights += [w] * len(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)
    return plain_text(segs), weights


def window_length(tokenizer, texts: Iterable[str]) -> int:
    """The smallest of 75/150/225 tokens that holds the longest text (longer ones are cut)."""
    longest = max((len(tokenizer(t, add_special_tokens=False, verbose=False).input_ids) for t in texts), default=0)
    for n in ALLOWED_LENGTHS:
        if longest <= n:
            return n
    return ALLOWED_LENGTHS[-1]


def emphasise(hidden: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Scale token states by their weights, then restore the mean (A1111's rule); BOS is weight 1."""
    w = torch.ones(hidden.shape[0], dtype=hidden.dtype, device=hidden.device)
    n = min(len(weights), hidden.shape[0] - 2)
    if n > 0:
        w[1:1 + n] = torch.tensor(weights[:n], dtype=hidden.dtype, device=hidden.device)
    before = hidden.float().mean()
    out = hidden * w[:, None]
    after = out.float().mean()
    return out * (before / after).to(hidden.dtype) if after != 0 else out


def encode(family, comps, prompts: Sequence[str], clip_skip: int, length: int) -> Conditioning:
    tok = comps.tokenizers[0]
    parsed = [token_weights(tok, p) if has_emphasis(parse_attention(p)) else (plain_text(parse_attention(p)), None)
              for p in prompts]
    with torch.no_grad():
        cond = family.encode_prompts(comps, [t for t, _ in parsed], clip_skip=clip_skip, max_token_length=length)
    if any(w is not None for _, w in parsed):
        hidden = cond.hidden_states.clone()
        for i, (_, w) in enumerate(parsed):
            if w is not None:
                hidden[i] = emphasise(hidden[i], w)
        cond = Conditioning(hidden, cond.pooled, cond.time_ids)
    return cond


def encode_pair(family, comps, prompts: Sequence[str], negatives: Sequence[str],
                clip_skip: int) -> tuple[Conditioning, Conditioning]:
    """Positive and negative conditioning of equal length (CFG stacks them)."""
    tok = comps.tokenizers[0]
    length = window_length(tok, [plain_text(parse_attention(t)) for t in [*prompts, *negatives]])
    pos = encode(family, comps, prompts, clip_skip, length)
    neg = encode(family, comps, negatives, clip_skip, length)
    if family.arch == "sdxl":  # an empty negative is all zeros for SDXL (SGM / A1111 behaviour)
        empty = torch.tensor([n.strip() == "" for n in negatives], device=neg.hidden_states.device)
        if empty.any():
            neg = Conditioning(torch.where(empty[:, None, None], 0, neg.hidden_states),
                               torch.where(empty[:, None], 0, neg.pooled), neg.time_ids)
    return pos, neg


# -- the engine --------------------------------------------------------------------------------

OnImage = Callable[[Job, "object"], None]  # (job, PIL image)
OnError = Callable[[Job, str], None]


class Engine:
    """Renders Jobs on one loaded model; LoRAs are applied per group of equal Settings."""

    def __init__(self, family, comps, device: torch.device | str = "cpu", batch_size: int = 4, keep_loras: int = 2):
        self.family, self.comps, self.device = family, comps, torch.device(device)
        self.batch_size = max(1, batch_size)
        self.patcher = LoraPatcher(family.lora_targets(comps, conv=True, text_encoder=True))
        self._loras: OrderedDict[str, LoadedLora] = OrderedDict()
        self._keep = keep_loras
        self._pipes: dict[str, object] = {}
        self.unmatched: dict[str, list[str]] = {}

    def lora(self, path: str) -> LoadedLora:
        if path in self._loras:
            self._loras.move_to_end(path)
            return self._loras[path]
        lora = load_lora(path, self.device)
        self._loras[path] = lora
        while len(self._loras) > self._keep:
            self._loras.popitem(last=False)
        return lora

    def pipe(self, sampler: str):
        if sampler not in self._pipes:
            p = self.family.pipeline(self.comps, sampler)
            p.set_progress_bar_config(disable=True)
            self._pipes[sampler] = p
        return self._pipes[sampler]

    def render(self, jobs: Sequence[Job], on_image: OnImage, on_error: OnError | None = None) -> None:
        """Every job once; groups of equal settings share one LoRA application."""
        groups: OrderedDict[Settings, list[Job]] = OrderedDict()
        for j in jobs:
            groups.setdefault(j.settings, []).append(j)
        for settings, group in groups.items():
            try:
                uses = [Use(self.lora(s.path), s.te, s.unet) for s in settings.loras]
            except KilnError as e:
                self._fail(group, str(e), on_error)
                continue
            with self.patcher.applied(uses) as report:
                self.unmatched.update(report.unmatched)
                for i in range(0, len(group), self.batch_size):
                    chunk = group[i:i + self.batch_size]
                    try:
                        images = self.generate(settings, chunk)
                    except (RuntimeError, ValueError) as e:  # e.g. out of memory: the chunk fails, the run goes on
                        self._fail(chunk, f"generation failed: {str(e).splitlines()[0][:300]}", on_error)
                        continue
                    for j, im in zip(chunk, images):
                        on_image(j, im)

    @staticmethod
    def _fail(jobs: Sequence[Job], reason: str, on_error: OnError | None) -> None:
        if on_error is None:
            raise KilnError(reason)
        for j in jobs:
            on_error(j, reason)

    def generate(self, s: Settings, jobs: Sequence[Job]) -> list:
        """The images of one batch (LoRAs already applied)."""
        pos, neg = encode_pair(self.family, self.comps, [j.prompt for j in jobs], [j.negative for j in jobs],
                               s.clip_skip)
        gens = [torch.Generator(device="cpu").manual_seed(int(j.seed)) for j in jobs]
        kw = dict(prompt_embeds=pos.hidden_states, negative_prompt_embeds=neg.hidden_states)
        if pos.pooled is not None:
            kw.update(pooled_prompt_embeds=pos.pooled, negative_pooled_prompt_embeds=neg.pooled)
        dtype = self.comps.unet.dtype
        kw = {k: v.to(self.device, dtype) for k, v in kw.items()}
        with torch.no_grad():
            out = self.pipe(s.sampler)(width=s.width, height=s.height, num_inference_steps=s.steps,
                                       guidance_scale=s.cfg, generator=gens, output_type="pil", **kw)
        return list(out.images)


def check_size(width: int, height: int) -> tuple[int, int]:
    """Sizes must be multiples of 8 (the VAE's factor); A1111 rounds the same way."""
    if width < 8 or height < 8:
        raise KilnError(f"image size {width}x{height} is too small")
    return width - width % 8, height - height % 8


__all__ = ["Engine", "Job", "LoraSpec", "Settings", "encode_pair", "emphasise", "token_weights", "window_length",
           "check_size", "WINDOW"]
