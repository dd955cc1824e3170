"""A tiny CCIP-shaped pair of ONNX models with the real interface, built with onnx.helper.

model_feat.onnx     input `input` NCHW float32 [batch, 3, S, S] (CLIP-normalised RGB) ->
                    output `output` [batch, 3]: the per-channel mean (a 3-d "feature")
model_metrics.onnx  input `input` [n, 3] -> output `output` [n, n]: 1 - cosine similarity
metrics.json        {"threshold": THRESHOLD}

So the difference of two pictures is known from their mean colours: `feature()` and
`difference()` are the numpy twins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

THRESHOLD = 0.05
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _save(model: onnx.ModelProto, path: Path) -> None:
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def feat_model(size: int = 32) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["output"], axes=[2, 3], keepdims=0)], "tiny_ccip_feat",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def metrics_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Mul", ["input", "input"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axis1"], ["ss"], keepdims=1),
        helper.make_node("Sqrt", ["ss"], ["norm"]),
        helper.make_node("Div", ["input", "norm"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["unit_t"], perm=[1, 0]),
        helper.make_node("MatMul", ["unit", "unit_t"], ["sim"]),
        helper.make_node("Sub", ["one", "sim"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_ccip_metrics", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", "n"])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
                     numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def make_ccip_folder(folder: Path, size: int = 32, threshold: float = THRESHOLD) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save(feat_model(size), folder / "model_feat.onnx")
    _save(metrics_model(), folder / "model_metrics.onnx")
    (folder / "metrics.json").write_text(json.dumps({"threshold": threshold}))
    return folder


def feature(rgb: tuple[int, int, int]) -> np.ndarray:
    """The tiny model's feature of a solid-colour picture."""
    return (np.array(rgb, dtype=np.float32) / 255.0 - MEAN) / STD


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
