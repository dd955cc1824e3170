"""Learning rate from the training 'strength' (seed 003): L = S / (R x E x I).

R x I is the number of images seen per epoch (T), so with several subsets the formula is
L = S / (T x E): the same strength spread over every image the model will see.
The text-encoder rate is a ratio of it (seed 003: 0.5-0.6; seed 001 SD1.5: a fifth).
"""

from __future__ import annotations

from lorakiln.planning.explain import Step, fmt, sig

RULE = "seed 003: L = S / (R x E x I)"
# optimizers that find their own step size: an absolute LR from the formula makes no sense
ADAPTIVE = ("prodigy", "dadapt")


def is_adaptive(optimizer: str | None) -> bool:
    return bool(optimizer) and optimizer.lower().replace("_", "").startswith(ADAPTIVE)


def lr_from_strength(strength: float, counts: dict[str, int], repeats: dict[str, int], epochs: int,
                     digits: int = 3) -> tuple[float, Step]:
    if strength <= 0:
        raise ValueError("strength must be positive")
    seen = sum(counts[s] * r for s, r in repeats.items()) * epochs
    exact = strength / seen
    if len(repeats) == 1:
        (s, r), = repeats.items()
        denom = f"{r} x {epochs} x {counts[s]}"
    else:
        denom = f"({' + '.join(f'{counts[s]} x {r}' for s, r in repeats.items())}) x {epochs}"
    value = sig(exact, digits)
    return value, Step("unet_lr", value, RULE,
                       f"{fmt(strength)} / ({denom}) = {strength} / {seen} = {exact!r} -> {value} ({digits} significant digits)")


def te_lr(unet_lr: float, ratio: float, digits: int = 3) -> tuple[float, Step]:
    value = sig(unet_lr * ratio, digits)
    return value, Step("text_encoder_lr", value, "text-encoder LR as a ratio of the U-Net LR (seed 003: x 0.5-0.6)",
                       f"{fmt(unet_lr)} x {fmt(ratio)} = {value}")
