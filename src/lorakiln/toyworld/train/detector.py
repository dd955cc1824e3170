"""Train the toy world's person, head and half-body detectors and write them in the layout of
deepghs' YOLO detectors (`kiln`'s `vision.detectors`: one `model.onnx` per kind).

    python -m lorakiln.toyworld.train.detector --out DIR --seed 0 [--steps 4000] [--batch 64]

One small network sees 64x64 renders and predicts, on a 16x16 grid (stride 4), a score and a box
for each of the three kinds; boxes come from the renderer (`FigureBoxes`), so the labels are
exact. A cell is a positive for a box when its centre lies inside the box and within 1.5 cells of
the box's centre (centre sampling); where two boxes of a kind claim a cell, the smaller wins.
Loss: binary cross-entropy on the scores, L1 and 1 - IoU on the positives' boxes.

Each kind is exported as its own ONNX file with the interface of an Ultralytics YOLOv8 export,
which is what imgutils and kiln's runner read: input `images` [batch, 3, 64, 64] RGB 0-1,
output `output0` [batch, 5, 256] (box centre x, centre y, width, height in input pixels, then
the kind's score), metadata `names` and `imgsz`. kiln's `vision.yolo` decodes it, with its own
thresholds and non-maximum suppression. After training, each file is measured through kiln's
loader (`vision.detectors.load_detector(kind, local_dir=...)`) on renders of another seed:
precision and recall at IoU 0.5, on the pretraining mix and on the held-out characters.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lorakiln.toyworld import HELD_OUT, Mix, generate
from lorakiln.toyworld.train.common import Progress, export_onnx, setup, write_json

SIZE, STRIDE = 64, 4
GRID = SIZE // STRIDE
KINDS = ("person", "head", "halfbody")
TRAIN_MIX = Mix(anonymous=0.4, two_figures=0.35)  # overlapping pairs are what splitting needs
EVAL_SEED_OFFSET = 100_000


def _block(i: int, o: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DetectorNet(nn.Module):
    """[N, 3, 64, 64] in 0-1 -> raw [N, 3 kinds, 5, 16, 16] (4 box numbers + a score logit)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_block(3, w, 2), _block(w, 2 * w, 2), _block(2 * w, 2 * w))  # 16x16
        self.down = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w),              # 8x8
                                  _block(4 * w, 4 * w, 2), _block(4 * w, 4 * w))              # 4x4
        self.mid = nn.Sequential(_block(4 * w, 4 * w))
        self.lateral = nn.Conv2d(4 * w, 2 * w, 1)
        self.head = nn.Sequential(_block(4 * w, 2 * w), nn.Conv2d(2 * w, len(KINDS) * 5, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f16 = self.stem((x - 0.5) / 0.25)
        deep = self.mid(self.down(f16))  # 4x4: sees the whole picture
        up = nn.functional.interpolate(self.lateral(deep), size=f16.shape[-2:], mode="nearest")
        out = self.head(torch.cat([f16, up], dim=1))
        return out.view(x.shape[0], len(KINDS), 5, GRID, GRID)


def decode_boxes(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """raw [..., 5, 16, 16] -> (boxes cx, cy, w, h in pixels [..., 4, 16, 16], score logits)."""
    g = (torch.arange(GRID, dtype=raw.dtype) + 0.5) * STRIDE
    cx = g.view(1, GRID) + 2 * STRIDE * torch.tanh(raw[..., 0, :, :])
    cy = g.view(GRID, 1) + 2 * STRIDE * torch.tanh(raw[..., 1, :, :])
    w = SIZE * torch.sigmoid(raw[..., 2, :, :])
    h = SIZE * torch.sigmoid(raw[..., 3, :, :])
    return torch.stack([cx, cy, w, h], dim=-3), raw[..., 4, :, :]


class YoloInterface(nn.Module):
    """One kind as an Ultralytics YOLOv8 export: images [N, 3, 64, 64] -> output0 [N, 5, 256]."""

    def __init__(self, net: DetectorNet, kind: int):
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        boxes, logits = decode_boxes(self.net(images)[:, self.kind])
        out = torch.cat([boxes, torch.sigmoid(logits).unsqueeze(1)], dim=1)
        return out.flatten(2)


def targets(samples) -> tuple[np.ndarray, np.ndarray]:
    """(positive mask [N, 3, 16, 16], target boxes cx, cy, w, h [N, 3, 4, 16, 16])."""
    n = len(samples)
    pos = np.zeros((n, len(KINDS), GRID, GRID), bool)
    box = np.zeros((n, len(KINDS), 4, GRID, GRID), np.float32)
    area = np.full((n, len(KINDS), GRID, GRID), np.inf)
    centres = (np.arange(GRID) + 0.5) * STRIDE
    for i, s in enumerate(samples):
        for fig in s.boxes:
            for k, kind in enumerate(KINDS):
                x0, y0, x1, y1 = getattr(fig, kind)
                cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
                if bw < 2 or bh < 2:
                    continue
                inx = (centres > x0) & (centres < x1) & (np.abs(centres - cx) <= 1.5 * STRIDE)
                iny = (centres > y0) & (centres < y1) & (np.abs(centres - cy) <= 1.5 * STRIDE)
                if not inx.any():
                    inx = np.abs(centres - cx) == np.abs(centres - cx).min()
                if not iny.any():
                    iny = np.abs(centres - cy) == np.abs(centres - cy).min()
                cells = iny[:, None] & inx[None, :] & (bw * bh < area[i, k])
                pos[i, k][cells] = True
                area[i, k][cells] = bw * bh
                for j, v in enumerate((cx, cy, bw, bh)):
                    box[i, k, j][cells] = v
    return pos, box


def iou_xywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of [M, 4] centre-size boxes, pairwise by row."""
    ax0, ay0, ax1, ay1 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
    bx0, by0, bx1, by1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp(min=0)
    ih = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp(min=0)
    inter = iw * ih
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter + 1e-6)


def loss_fn(raw: torch.Tensor, pos: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, float]:
    pred, logits = decode_boxes(raw)  # [N, 3, 4, G, G], [N, 3, G, G]
    score_loss = nn.functional.binary_cross_entropy_with_logits(logits, pos.float(), pos_weight=torch.tensor(4.0))
    p = pred.permute(0, 1, 3, 4, 2)[pos]
    t = box.permute(0, 1, 3, 4, 2)[pos]
    if p.numel() == 0:
        return score_loss, 0.0
    iou = iou_xywh(p, t)
    box_loss = (p - t).abs().mean() / STRIDE + (1 - iou).mean()
    return score_loss + box_loss, float(iou.detach().mean())


def batch_tensor(samples) -> torch.Tensor:
    arr = np.stack([np.asarray(s.image.convert("RGB"), np.float32).transpose(2, 0, 1) / 255 for s in samples])
    return torch.from_numpy(arr)


def jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Box-preserving changes: brightness, noise, a little blur on some pictures (no mirroring:
    the boxes would have to follow)."""
    n = x.shape[0]
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :] / 16).expand(3, 1, 3, 3)
    blurred = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=3)
    x = torch.where((torch.rand(n, generator=gen) < 0.3)[:, None, None, None], blurred, x)
    x = x * (1 + 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5))
    return (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def train(seed: int, steps: int, batch: int, lr: float) -> DetectorNet:
    setup(seed)
    net = DetectorNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, i / steps))))
    gen = torch.Generator().manual_seed(seed)
    progress = Progress("detector", steps)
    net.train()
    for i in range(steps):
        samples = list(generate(batch, seed=seed, start=i * batch, mix=TRAIN_MIX))
        pos, box = targets(samples)
        loss, iou = loss_fn(net(jitter(batch_tensor(samples), gen)), torch.from_numpy(pos), torch.from_numpy(box))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        progress.step(i, loss=float(loss), iou=iou)
    return net.eval()


def write_models(net: DetectorNet, out: Path) -> None:
    import onnx

    for k, kind in enumerate(KINDS):
        path = out / kind / "model.onnx"
        export_onnx(YoloInterface(net, k), torch.zeros(1, 3, SIZE, SIZE), path, ["images"], ["output0"],
                    {"images": {0: "batch"}, "output0": {0: "batch"}})
        model = onnx.load(str(path))
        for key, value in (("names", f"{{0: '{kind}'}}"), ("imgsz", f"[{SIZE}, {SIZE}]"), ("stride", str(STRIDE)),
                           ("description", f"lorakiln toy world {kind} detector")):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))


def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(found: list, truth: list, at: float = 0.5) -> tuple[int, int, int]:
    """(true positives, detections, truths): greedy one-to-one matching at IoU >= `at`."""
    left, tp = list(truth), 0
    for box in found:
        best = max(left, key=lambda t: _iou(box, t), default=None)
        if best is not None and _iou(box, best) >= at:
            tp += 1
            left.remove(best)
    return tp, len(found), len(truth)


def measure(out: Path, seed: int, n: int) -> dict:
    from lorakiln.vision.detectors import load_detector

    sets = {"pretraining mix": list(generate(n, seed=seed + EVAL_SEED_OFFSET, mix=TRAIN_MIX)),
            "held-out characters": list(generate(n, seed=seed + EVAL_SEED_OFFSET + 1, characters=list(HELD_OUT),
                                                 mix=Mix(anonymous=0.0, two_figures=0.35)))}
    result: dict = {}
    for k, kind in enumerate(KINDS):
        det = load_detector(kind, local_dir=out / kind)
        for name, samples in sets.items():
            found = det.detect([s.image for s in samples])
            tp = nd = nt = 0
            for s, dets in zip(samples, found):
                a, b, c = match([d.box for d in dets], [getattr(f, kind) for f in s.boxes])
                tp, nd, nt = tp + a, nd + b, nt + c
            result.setdefault(kind, {})[name] = {"precision": round(tp / max(nd, 1), 4),
                                                 "recall": round(tp / max(nt, 1), 4), "boxes": nt}
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for {person,head,halfbody}/model.onnx")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval", type=int, default=1000, help="pictures per evaluation set")
    args = ap.parse_args(argv)
    net = train(args.seed, args.steps, args.batch, args.lr)
    write_models(net, args.out)
    quality = measure(args.out, args.seed, args.eval)
    write_json(args.out / "quality.json", {"seed": args.seed, "steps": args.steps, "batch": args.batch,
                                           "iou_match": 0.5, "quality": quality})
    for kind, sets in quality.items():
        for name, q in sets.items():
            print(f"{kind:9} {name:20} precision {q['precision']:.3f} recall {q['recall']:.3f} ({q['boxes']} boxes)")


if __name__ == "__main__":
    main()
