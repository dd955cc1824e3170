"""Prompt -> token windows -> hidden states, as kohya/A1111 do for long prompts.

A caption of up to 75/150/225 tokens is cut into 1-3 windows of 75 tokens, each wrapped in
<BOS> ... <EOS> (77 tokens) and encoded separately; the windows' states are then joined back
into one sequence of 77/152/227 (kohya library/train_util.py get_input_ids / get_hidden_states).
"""

from __future__ import annotations

import torch
from torch import nn

WINDOW = 75
ALLOWED_LENGTHS = (75, 150, 225)


def check_length(max_token_length: int) -> int:
    if max_token_length not in ALLOWED_LENGTHS:
        raise ValueError(f"max_token_length must be one of {ALLOWED_LENGTHS}, got {max_token_length}")
    return max_token_length


def token_windows(tokenizer, captions: list[str], max_token_length: int = 75) -> torch.Tensor:
    """[B, n_windows, 77] token ids; each window is <BOS> 75 tokens <EOS/PAD>."""
    check_length(max_token_length)
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=max_token_length + 2,
                    return_tensors="pt").input_ids
    if max_token_length == WINDOW:
        return ids.unsqueeze(1)
    return torch.stack([_windows(row, tokenizer) for row in ids])


def _windows(row: torch.Tensor, tokenizer) -> torch.Tensor:
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out = []
    for i in range(1, row.shape[0] - 2, WINDOW):
        chunk = torch.cat([row[:1], row[i:i + WINDOW], row[-1:]])
        if pad != eos:  # "!"-padded tokenizer (SDXL te2): keep every window closed by <EOS>
            if chunk[-2] not in (eos, pad):
                chunk[-1] = eos
            if chunk[1] == pad:
                chunk[1] = eos
        out.append(chunk)
    return torch.stack(out)


def join_windows(states: torch.Tensor, batch: int) -> torch.Tensor:
    """[B*n, 77, C] per-window states -> [B, 2 + 75n, C]: first <BOS>, each window's body, last <EOS>."""
    states = states.reshape(batch, -1, states.shape[-1])
    n = states.shape[1] // (WINDOW + 2)
    if n == 1:
        return states
    parts = [states[:, :1]]
    for w in range(n):
        start = w * (WINDOW + 2) + 1
        parts.append(states[:, start:start + WINDOW])
    parts.append(states[:, -1:])
    return torch.cat(parts, dim=1)


def text_model(encoder: nn.Module) -> nn.Module:
    """The module holding embeddings/encoder/final_layer_norm (transformers >= 5.6 flattened CLIPTextModel)."""
    return getattr(encoder, "text_model", encoder)


def hidden_layer(encoder: nn.Module, ids: torch.Tensor, skip: int, final_norm: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(states of the layer `skip` from the end, last_hidden_state); skip=1 is the last layer."""
    out = encoder(ids.to(encoder.device), output_hidden_states=True, return_dict=True)
    states = out.hidden_states[-skip]
    if skip == 1 and final_norm:
        states = out.last_hidden_state
    elif final_norm:
        states = text_model(encoder).final_layer_norm(states)
    return states, out.last_hidden_state


def pooled_output(encoder: nn.Module, last_hidden: torch.Tensor, ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Projected state at the first <EOS> (kohya's pool_workaround; independent of config eos ids)."""
    tm = text_model(encoder)
    normed = tm.final_layer_norm(last_hidden)
    idx = (ids.to(normed.device) == eos_id).int().argmax(dim=-1)
    pooled = normed[torch.arange(normed.shape[0], device=normed.device), idx]
    return encoder.text_projection(pooled)
