"""The demo's tagger: a real ONNX model with the WD v3 interface that knows the demo pictures.

It is a fixed linear layer over a few colour statistics of the picture (share of dark, blue,
green, beige, white, magenta, skin, grey and pale pixels), so it finds the demo character's outfits,
backgrounds and views the way a real tagger would find them in real pictures. It runs through
exactly the same loading and preprocessing code as the real WD taggers (`kiln tag --model DIR`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# feature name -> (condition over B, G, R in 0-255); the share of pixels meeting it is the feature
FEATURES = ["dark", "blue", "green", "beige", "white", "magenta", "skin", "grey", "pale"]

# (tag, category, {feature: weight}, bias); categories: 9 rating, 0 general, 4 character
DEMO_TAGS = [
    ("general", 9, {}, 2.0),
    ("sensitive", 9, {"blue": 12.0}, -2.5),
    ("questionable", 9, {}, -5.0),
    ("explicit", 9, {}, -6.0),
    ("1girl", 0, {"magenta": 40.0}, -0.5),
    ("solo", 0, {"magenta": 40.0}, -1.0),
    ("long_hair", 0, {"magenta": 60.0}, -1.5),
    ("purple_eyes", 0, {"skin": 300.0}, -3.0),
    ("coat", 0, {"dark": 20.0}, -2.5),
    ("swimsuit", 0, {"blue": 20.0}, -2.0),
    ("dress", 0, {"pale": 15.0}, -2.0),
    ("outdoors", 0, {"green": 10.0}, -3.0),
    ("indoors", 0, {"beige": 10.0}, -3.0),
    ("white_background", 0, {"white": 12.0}, -5.0),
    ("simple_background", 0, {"white": 12.0}, -5.5),
    ("from_behind", 0, {"skin": -400.0, "magenta": 30.0}, 1.0),
    ("smile", 0, {"skin": 300.0}, -3.5),
    ("monochrome", 0, {"grey": 40.0}, -38.0),
    ("greyscale", 0, {"grey": 40.0}, -38.0),
    ("kilnchan", 4, {"magenta": 80.0}, -3.0),
]


def _masks(helper, x: str) -> list:
    """ONNX nodes computing one [batch, H, W] float mask per feature from NHWC BGR input `x`."""
    n = helper.make_node
    nodes = [n("Split", [x, "split3"], ["B", "G", "R"], axis=3)]
    for c in "BGR":
        nodes.append(n("Squeeze", [c, "ax3"], [c + "s"]))

    def cmp(op, a, const, out):
        nodes.append(n(op, [a, const], [out]))

    def diff(a, b, out):
        nodes.append(n("Sub", [a, b], [out]))

    def both(a, b, out):
        nodes.append(n("And", [a, b], [out]))

    # dark: max(B,G,R) < 70
    nodes.append(n("Max", ["Bs", "Gs", "Rs"], ["mx"]))
    nodes.append(n("Min", ["Bs", "Gs", "Rs"], ["mn"]))
    cmp("Less", "mx", "c70", "dark_b")
    # blue: B - R > 120
    diff("Bs", "Rs", "b_r"); cmp("Greater", "b_r", "c120", "blue_b")
    # green: G - R > 40 and G - B > 40
    diff("Gs", "Rs", "g_r"); diff("Gs", "Bs", "g_b")
    cmp("Greater", "g_r", "c40", "g1"); cmp("Greater", "g_b", "c40", "g2"); both("g1", "g2", "green_b")
    # beige: R - B > 55 and G > 140 and R > 170
    diff("Rs", "Bs", "r_b"); cmp("Greater", "r_b", "c55", "be1"); cmp("Greater", "Gs", "c140", "be2")
    cmp("Greater", "Rs", "c170", "be3"); both("be1", "be2", "be12"); both("be12", "be3", "beige_b")
    # white: min > 240
    cmp("Greater", "mn", "c240", "white_b")
    # magenta hair: R > 150, G < 80, B > 60
    cmp("Greater", "Rs", "c150", "m1"); cmp("Less", "Gs", "c80", "m2"); cmp("Greater", "Bs", "c60", "m3")
    both("m1", "m2", "m12"); both("m12", "m3", "magenta_b")
    # skin: R > 235, 205 < G < 235, 185 < B < 215
    cmp("Greater", "Rs", "c235", "s1"); cmp("Greater", "Gs", "c205", "s2"); cmp("Less", "Gs", "c235", "s3")
    cmp("Greater", "Bs", "c185", "s4"); cmp("Less", "Bs", "c215", "s5")
    both("s1", "s2", "s12"); both("s12", "s3", "s123"); both("s123", "s4", "s1234"); both("s1234", "s5", "skin_b")
    # grey: max - min < 6
    diff("mx", "mn", "spread"); cmp("Less", "spread", "c6", "grey_b")
    # pale (a white dress, not a white page): min > 225 and max < 244
    cmp("Greater", "mn", "c225", "p1"); cmp("Less", "mx", "c244", "p2"); both("p1", "p2", "pale_b")
    feats = []
    for f in FEATURES:
        nodes.append(n("Cast", [f + "_b"], [f + "_f"], to=1))
        nodes.append(n("ReduceMean", [f + "_f", "ax12"], [f + "_m"], keepdims=0))
        nodes.append(n("Unsqueeze", [f + "_m", "ax1"], [f + "_u"]))
        feats.append(f + "_u")
    nodes.append(n("Concat", feats, ["features"], axis=1))
    return nodes


def build_demo_tagger(size: int = 64):
    """The ONNX model (needs the `onnx` package)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((len(FEATURES), len(DEMO_TAGS)), dtype=np.float32)
    b = np.array([t[3] for t in DEMO_TAGS], dtype=np.float32)
    for j, (_, _, weights, _) in enumerate(DEMO_TAGS):
        for f, v in weights.items():
            w[FEATURES.index(f), j] = v
    nodes = _masks(helper, "input") + [
        helper.make_node("MatMul", ["features", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "Bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    consts = {f"c{v}": np.array(v, dtype=np.float32) for v in (6, 40, 55, 60, 70, 80, 120, 140, 150, 170, 185, 205, 215, 225, 235, 240, 244)}
    consts.update({"W": w, "Bias": b, "split3": np.array([1, 1, 1], dtype=np.int64),
                   "ax3": np.array([3], dtype=np.int64), "ax12": np.array([1, 2], dtype=np.int64),
                   "ax1": np.array([1], dtype=np.int64)})
    graph = helper.make_graph(
        nodes, "kiln_demo_tagger",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", size, size, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", len(DEMO_TAGS)])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_demo_tagger(folder: Path, size: int = 64) -> Path:
    """A local tagger folder: model.onnx + selected_tags.csv, usable as `kiln tag --model DIR`."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(build_demo_tagger(size), str(folder / "model.onnx"))
    rows = ["tag_id,name,category,count"]
    rows += [f"{i},{name},{cat},{1000 - i}" for i, (name, cat, _, _) in enumerate(DEMO_TAGS)]
    (folder / "selected_tags.csv").write_text("\n".join(rows) + "\n")
    return folder
