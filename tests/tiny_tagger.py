"""A tiny ONNX tagger with the WD v3 interface, built with onnx.helper (no torch export).

Input `input`: NHWC float32 [batch, S, S, 3] (BGR, 0-255), dynamic batch (or fixed to 1).
Output `output`: sigmoid probabilities [batch, n_tags], in the order of selected_tags.csv.

The model is a fixed linear layer over the image's mean B, G, R (scaled to 0-1), so which
tags come out is known from the picture:
- outdoors  rises with green over red+blue (the demo's green outdoor background);
- indoors   rises with red over blue (the demo's beige indoor background): a picture fed
            in RGB instead of BGR flips its sign, so channel order is tested;
- white_background rises with overall brightness;
- 1girl, solo, long_hair (0.45, between the usual thresholds) and the characters are constants.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (name, category, weight on mean [B, G, R], bias)
TAGS = [
    ("general", 9, (0, 0, 0), 2.0),
    ("sensitive", 9, (0, 0, 0), -2.0),
    ("questionable", 9, (0, 0, 0), -4.0),
    ("explicit", 9, (0, 0, 0), -5.0),
    ("1girl", 0, (0, 0, 0), 4.0),
    ("solo", 0, (0, 0, 0), 3.0),
    ("long_hair", 0, (0, 0, 0), -0.2),
    ("outdoors", 0, (-20, 40, -20), -4.0),
    ("indoors", 0, (-40, 0, 40), -4.0),
    ("white_background", 0, (12, 12, 12), -28.0),
    ("kilnchan", 4, (0, 0, 0), 2.5),
    ("other_girl", 4, (0, 0, 0), -1.0),
]
E621_TAGS = [  # tags-selected.csv of the e621 adapter: e621 category codes, no rating rows
    ("solo", 0, (0, 0, 0), 3.0),
    ("outdoors", 0, (-20, 40, -20), -4.0),
    ("canine", 5, (0, 0, 0), 2.0),
    ("kilnfox", 4, (0, 0, 0), 2.5),
    ("some_artist", 1, (0, 0, 0), 1.5),
    ("bad_tag", 6, (0, 0, 0), 3.0),
]


def logits(mean_bgr01: np.ndarray, tags=TAGS) -> np.ndarray:
    """The model's logits for mean B, G, R in 0-1: the numpy twin of the ONNX graph."""
    w = np.array([t[2] for t in tags], dtype=np.float32).T
    b = np.array([t[3] for t in tags], dtype=np.float32)
    return mean_bgr01 @ w + b


def build_model(size: int = 64, tags=TAGS, fixed_batch: bool = False, embedding_output: bool = False,
                input_name: str = "input", output_name: str = "output",
                hidden_batch_one: bool = False) -> onnx.ModelProto:
    """`hidden_batch_one`: the input claims a dynamic batch but a Reshape inside needs 1."""
    n = len(tags)
    w = np.array([t[2] for t in tags], dtype=np.float32).T  # [3, n]
    b = np.array([t[3] for t in tags], dtype=np.float32)
    batch = 1 if fixed_batch else "batch"
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["mean", "scale"], ["mean01"]),
        helper.make_node("MatMul", ["mean01", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Reshape", ["probs", "one_row"], [output_name]) if hidden_batch_one
        else helper.make_node("Identity", ["probs"], [output_name]),
    ]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, n])]
    if embedding_output:  # like deepghs' re-exports: an extra embedding output listed first
        nodes.append(helper.make_node("Identity", ["mean01"], ["embedding"]))
        outputs.insert(0, helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, 3]))
    graph = helper.make_graph(
        nodes, "tiny_tagger",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, size, size, 3])],
        outputs,
        initializer=[numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"),
                     numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
                     numpy_helper.from_array(np.array([1, n], dtype=np.int64), "one_row")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def labels_csv(tags=TAGS) -> str:
    rows = ["tag_id,name,category,count"]
    rows += [f"{1000 + i},{name},{cat},{5000 - i}" for i, (name, cat, _, _) in enumerate(tags)]
    return "\n".join(rows) + "\n"


def make_tagger_folder(folder: Path, size: int = 64, e621: bool = False, **kw) -> Path:
    """A local model folder: model.onnx + selected_tags.csv (tags-selected.csv for e621)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tags = E621_TAGS if e621 else TAGS
    onnx.save(build_model(size, tags, **kw), str(folder / "model.onnx"))
    (folder / ("tags-selected.csv" if e621 else "selected_tags.csv")).write_text(labels_csv(tags))
    return folder
