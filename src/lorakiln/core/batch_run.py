"""Running a model on a batch, falling back to one item at a time when the batch fails.

ONNX exports often declare a dynamic batch dimension that their graph does not really support
(a reshape to batch 1 inside): the first batched run then fails. The taggers, the detectors and
the upscalers all do the same thing about it: run that batch and every later one item by item,
and say why in `fallback`, instead of failing the whole stage.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from lorakiln.core.errors import KilnError


class Batched(Protocol):
    source: str  # named in messages
    max_batch: int | None  # 1 once batches failed (or the model's batch dimension is fixed at 1)
    fallback: str | None  # why this model runs one item at a time


def run_batched(owner: Batched, batch: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`run(batch)`, or `run` on each item when batches fail; a failing single item is a KilnError."""
    if owner.max_batch == 1 and len(batch) > 1:
        return np.concatenate([run(batch[i:i + 1]) for i in range(len(batch))])
    try:
        return run(batch)
    except KilnError:
        raise
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if len(batch) == 1:
            raise KilnError(f"{owner.source}: model run failed: {first[:300]}") from None
        owner.max_batch = 1
        owner.fallback = f"a batch of {len(batch)} failed ({first[:160]}); running one at a time"
        return run_batched(owner, batch, run)
