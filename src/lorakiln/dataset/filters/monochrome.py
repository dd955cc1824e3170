"""Monochrome and greyscale images, judged by colour statistics of a downscaled copy.

Greyscale: almost no drawn pixel has colour. Tinted monochrome (sepia, blue-tone): every
pixel's colour is the average colour of its brightness level (a one-hue ramp) and the levels
share one hue. Near-white paper is left out, so a small colour figure on white stays colour.
"""

from __future__ import annotations

import numpy as np

from lorakiln.config.filter import FilterConfig
from lorakiln.dataset.filters.base import FILTERS, ColourStats, Filter, Item

THUMB = 128  # side of the downscaled copy the statistics use
_COLOURFUL = 24.0  # chroma (max - min of R, G, B) that counts as real colour
_OFF_RAMP = 16.0  # distance from the level's average colour that counts as another colour
_LEVELS = 16


def colour_stats(rgb: np.ndarray) -> ColourStats:
    """Statistics of an (H, W, 3) uint8 image; see the module docstring."""
    a = rgb.reshape(-1, 3).astype(np.float32)
    y = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chroma = a.max(axis=1) - a.min(axis=1)
    ink = ~((y >= 235) & (chroma <= 12))  # drop blank paper
    if ink.sum() < max(1, 0.01 * len(y)):
        return ColourStats(0.0, 0.0, 0.0)
    a, y, chroma = a[ink], y[ink], chroma[ink]
    c1 = a[:, 0] - a[:, 1]  # opponent colour axes
    c2 = (a[:, 0] + a[:, 1]) / 2 - a[:, 2]
    level = np.minimum((y * _LEVELS / 256).astype(np.int64), _LEVELS - 1)
    n = np.bincount(level, minlength=_LEVELS)
    m1 = np.bincount(level, c1, _LEVELS) / np.maximum(n, 1)
    m2 = np.bincount(level, c2, _LEVELS) / np.maximum(n, 1)
    off = np.hypot(c1 - m1[level], c2 - m2[level])
    return ColourStats(float((chroma > _COLOURFUL).mean()), float((off > _OFF_RAMP).mean()),
                       _hue_spread(m1, m2, n >= 0.005 * len(y)))


def _hue_spread(m1: np.ndarray, m2: np.ndarray, used: np.ndarray) -> float:
    """1 - length of the magnitude-weighted mean hue vector of the brightness levels."""
    mag = np.hypot(m1, m2) * used
    if mag.sum() < 1e-6:
        return 0.0
    resultant = np.hypot((m1 * used).sum(), (m2 * used).sum())
    return float(max(0.0, 1.0 - resultant / mag.sum()))


@FILTERS.register("monochrome")
class Monochrome(Filter):
    name = label = "monochrome"
    needs_pixels = True

    def __init__(self, grey_max: float, off_ramp_max: float, hue_spread_max: float):
        self.grey_max, self.off_ramp_max, self.hue_max = grey_max, off_ramp_max, hue_spread_max

    @classmethod
    def from_config(cls, cfg: FilterConfig) -> Filter:
        return cls(cfg.greyscale_max_colour, cfg.mono_max_off_ramp, cfg.mono_max_hue_spread)

    def reject(self, item: Item) -> str | None:
        s = item.facts.colour
        if s is None:
            return None
        if s.colour <= self.grey_max:
            return f"greyscale ({s.colour:.1%} coloured pixels)"
        if s.off_ramp <= self.off_ramp_max and s.hue_spread <= self.hue_max:
            return f"single hue ({s.off_ramp:.1%} off the tone ramp, hue spread {s.hue_spread:.2f})"
        return None

    def describe(self) -> str:
        return f"greyscale or one-hue tint on a {THUMB}px copy"

