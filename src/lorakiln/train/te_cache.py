"""Text-encoder output caching: each distinct (caption, size conditioning) is encoded once.

Only valid while the text encoders are frozen and captions are static (no shuffle, dropout or
wildcards); `te_cache_blockers` says what stands in the way, so the service can warn instead
of silently changing the training.
"""

from __future__ import annotations

from typing import Callable

import torch

from lorakiln.train.caption_proc import is_static
from lorakiln.train.families.base import Conditioning


def te_cache_blockers(subset_options: list, trains_text_encoder: bool) -> list[str]:
    """Why caching text-encoder outputs would change training (empty = safe to cache)."""
    out = ["the text encoder is trained (set network_train_unet_only or text_encoder_lr = 0)"] if trains_text_encoder else []
    for opts in subset_options:
        for reason in is_static(opts):
            if reason not in out:
                out.append(reason)
    return out


class TextEncoderCache:
    """Per-row cache of Conditioning; `encode(captions, sizes)` runs only for rows not seen yet."""

    def __init__(self, encode: Callable[[list[str], list[tuple] | None], Conditioning]):
        self.encode = encode
        self.rows: dict[tuple, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, captions: list[str], sizes: list[tuple] | None = None) -> Conditioning:
        keys = [(c, tuple(s) if sizes is not None else None) for c, s in zip(captions, sizes or [None] * len(captions))]
        new = [k for k in dict.fromkeys(keys) if k not in self.rows]
        self.hits += len(keys) - len(new)
        self.misses += len(new)
        if new:
            with torch.no_grad():
                cond = self.encode([c for c, _ in new], [s for _, s in new] if sizes is not None else None)
            for j, k in enumerate(new):
                self.rows[k] = tuple(None if t is None else t[j].detach() for t in
                                     (cond.hidden_states, cond.pooled, cond.time_ids))
        rows = [self.rows[k] for k in keys]
        stack = lambda i: None if rows[0][i] is None else torch.stack([r[i] for r in rows])  # noqa: E731
        return Conditioning(stack(0), stack(1), stack(2))
