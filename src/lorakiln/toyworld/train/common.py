"""What the toy world's training scripts share: one CPU thread, seeding, the small
convolutional trunk, augmentation, progress lines, ONNX export and a few measures."""

from __future__ import annotations

import json
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

def setup(seed: int) -> None:
    """One thread (the machine is shared), deterministic seeds."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class Progress:
    """Prints `what step/total loss ... elapsed` lines, at most every `every` seconds."""

    def __init__(self, what: str, total: int, every: float = 15.0):
        self.what, self.total, self.every = what, total, every
        self.start = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def step(self, i: int, **values: float) -> None:
        now = time.monotonic()
        if now - self.last < self.every and i + 1 != self.total:
            return
        self.last = now
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"{self.what} step {i + 1}/{self.total} {shown} {self.elapsed():.0f}s", flush=True)


def _block(i: int, o: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]


def trunk(width: int = 32) -> nn.Sequential:
    """A small CNN for 64x64 pictures: [N, 3, 64, 64] -> [N, 8 * width, 8, 8]."""
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 4, 2, 1), nn.ReLU(inplace=True),              # 32x32: small parts keep their colour
        *_block(w, 2 * w), nn.MaxPool2d(2),                            # 16x16
        *_block(2 * w, 3 * w), *_block(3 * w, 3 * w), nn.MaxPool2d(2),  # 8x8
        *_block(3 * w, 5 * w), *_block(5 * w, 8 * w),
    )


class AvgMaxPool(nn.Module):
    """Global average and max pooling side by side (max keeps small things: eyes, a clip)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Tag- and identity-preserving changes to a [N, 3, H, W] batch in 0-1: mirror, a little blur
    on some pictures, brightness jitter and noise (the base model's samples are not crisp)."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    blur = torch.rand(n, generator=gen) < 0.3
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    x = torch.where(blur[:, None, None, None], blurred, x)
    x = x * (1 + 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5))
    x = x + 0.02 * torch.randn(x.shape, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    return x.clamp(0, 1)


def export_onnx(module: nn.Module, example, path: Path, input_names, output_names, dynamic_axes) -> None:
    """torch.onnx's TorchScript exporter at opset 17 (onnxruntime >= 1.14 runs it); one file,
    no external data, checked by onnx."""
    import onnx

    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: precision, recall, positives in truth (NaN where undefined)."""
    tp = (pred & truth).sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / pred.sum(0)
        recall = tp / truth.sum(0)
    return precision, recall, truth.sum(0)
