"""Box maths for detectors, numpy only: corner conversion, IoU, greedy NMS, rescaling.

Boxes are float arrays [n, 4] of (x0, y0, x1, y1) unless a function says otherwise.
`nms` follows the convention of deepghs imgutils' YOLO path (and of the classic
Fast R-CNN NMS it descends from): areas count pixels inclusively (+1 on each side), a box
is dropped when its IoU with a better box is above the threshold (equal is kept), and all
classes compete together unless classes are given.
"""

from __future__ import annotations

import numpy as np


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """Centre/size boxes (cx, cy, w, h) -> corner boxes (x0, y0, x1, y1)."""
    xywh = np.asarray(xywh, dtype=np.float64)
    half = xywh[..., 2:4] / 2
    return np.concatenate([xywh[..., 0:2] - half, xywh[..., 0:2] + half], axis=-1)


def iou_matrix(a: np.ndarray, b: np.ndarray, plus_one: bool = False) -> np.ndarray:
    """IoU of every box in `a` [n, 4] with every box in `b` [m, 4] -> [n, m].

    plus_one counts pixels inclusively (width = x1 - x0 + 1), as imgutils' NMS does.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    one = 1.0 if plus_one else 0.0
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(hi - lo + one, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
        classes: np.ndarray | None = None, plus_one: bool = True) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first.

    Each kept box is compared with all lower-scored boxes still alive in one vectorised
    step, so memory stays linear in the number of boxes (a low threshold on a YOLOv8 output
    can leave thousands of candidates). With `classes`, only boxes of the same class
    suppress each other.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    cls = None if classes is None else np.asarray(classes).reshape(-1)[order]
    boxes = boxes[order]
    one = 1.0 if plus_one else 0.0
    areas = (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    alive = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if not alive[i]:
            continue
        rest = np.flatnonzero(alive[i + 1:]) + i + 1
        if cls is not None:
            rest = rest[cls[rest] == cls[i]]
        if not len(rest):
            continue
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = np.clip(hi - lo + one, 0.0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[i] + areas[rest] - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0)
        alive[rest[iou > iou_threshold]] = False
    return order[alive]


def scale_boxes(boxes: np.ndarray, from_size: tuple[float, float], to_size: tuple[float, float]) -> np.ndarray:
    """Boxes measured on a (w, h) picture, mapped onto a stretched (w, h) picture (no letterbox)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fx = to_size[0] / from_size[0]
    fy = to_size[1] / from_size[1]
    return boxes * np.array([fx, fy, fx, fy])


def clip_round(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Clip boxes to a (w, h) picture and round to whole pixels (int64), as imgutils does."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    hi = np.array([size[0], size[1], size[0], size[1]], dtype=np.float64)
    return np.round(np.clip(boxes, 0.0, hi)).astype(np.int64)
