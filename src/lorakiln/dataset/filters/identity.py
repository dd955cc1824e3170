"""Identity: drop pictures that do not show the main character (CCIP features, vision/identity.py).

It judges the pictures together, so the service computes their difference matrix and calls
`decide`; `run` alone has nothing to measure with.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, Filter, Item, exempt
from lorakiln.vision.identity import IdentityResult, find_main_character


@FILTERS.register("identity")
class Identity(Filter):
    name = label = "identity"
    per_image = False
    needs_features = True

    def __init__(self, cfg: FilterConfig):
        self.threshold = cfg.identity_threshold  # None: the model's (resolved by the service)
        self.min_pictures = cfg.identity_min_pictures
        self.min_share = cfg.identity_min_share

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter | None:
        return cls(cfg) if cfg.identity else None

    def run(self, items: Sequence[Item]) -> dict[str, str]:
        raise TypeError("the identity filter needs a difference matrix: the filter service calls decide()")

    def decide(self, items: Sequence[Item], diff: np.ndarray, threshold: float) -> tuple[dict[str, str],
                                                                                          IdentityResult]:
        """Record id -> reason for the pictures of `items` (rows of `diff`) that are not the main
        character; pictures the user restored with --undo stay."""
        result = find_main_character(diff, threshold, min_pictures=self.min_pictures, min_share=self.min_share)
        out = {}
        for it, j in zip(items, result.judgements):
            if not j.kept and not exempt(it.record, self.name):
                out[it.record.id] = f"{self.label}: {j.reason}"
        return out, result

    def describe(self) -> str:
        thr = f"{self.threshold:g}" if self.threshold is not None else "the model's"
        return f"CCIP difference <= {thr} from the main character (>= {self.min_pictures} pictures, " \
               f"main share >= {self.min_share:.0%})"
