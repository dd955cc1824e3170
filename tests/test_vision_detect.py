"""The YOLO detector runner (lorakiln.vision) on tiny ONNX models with the real interface.

The models are built here with onnx.helper: input `images` NCHW float32 [batch, 3, 64, 64]
(dynamic batch, or fixed to 1), output `output0` [batch, 4 + classes, candidates] rows
(cx, cy, w, h, class scores), Ultralytics metadata `names` and `imgsz`. Every candidate is a
constant, except that BRIGHT's score rises with the picture's mean value (0.2 black, 0.8 white),
so batching mistakes (pictures mixed up or averaged) change the result.
"""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from lorakiln.core.errors import KilnError
from lorakiln.vision.boxes import iou_matrix, nms, xywh_to_xyxy
from lorakiln.vision.detectors import DETECTORS, load_detector
from lorakiln.vision.yolo import Detection, YoloDetector, decode, prepare, target_size

S = 64  # the tiny models' input size
# candidates on the 64x64 model input: (cx, cy, w, h, score of class 0, score of class 1)
CANDIDATES = [
    (16, 16, 16, 16, 0.90, 0.0),  # A: corners (8, 8, 24, 24)
    (17, 16, 16, 16, 0.80, 0.0),  # A': overlaps A (IoU ~0.89): suppressed
    (48, 40, 16, 32, 0.70, 0.0),  # B: corners (40, 24, 56, 56), apart from A: kept
    (40, 10, 8, 8, 0.0, 0.60),    # C: class 1, apart: kept
    (8, 56, 8, 8, 0.25, 0.0),     # D: below every default threshold
]
BRIGHT = (32, 32, 64, 64, 0.2, 0.0)  # whole picture; score 0.2 + 0.6 * mean(picture)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_model(path: Path, labels=("person", "other"), batch="batch", bright=True, hw=(S, S)) -> Path:
    rows = CANDIDATES + ([BRIGHT] if bright else [])
    const = np.zeros((1, 4 + len(labels), len(rows)), np.float32)
    slope = np.zeros_like(const)
    for j, (cx, cy, w, h, *scores) in enumerate(rows):
        const[0, :4, j] = (cx, cy, w, h)
        const[0, 4:, j] = scores[:len(labels)]
    if bright:
        slope[0, 4, len(rows) - 1] = 0.6
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["mean", "shape"], ["m"]),
        helper.make_node("Mul", ["m", "slope"], ["scaled"]),
        helper.make_node("Add", ["scaled", "const"], ["output0"]),
    ]
    inits = [numpy_helper.from_array(const, "const"), numpy_helper.from_array(slope, "slope"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape")]
    graph = helper.make_graph(
        nodes, "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, *hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + len(labels), len(rows)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    names = "{" + ", ".join(f"{i}: '{n}'" for i, n in enumerate(labels)) + "}"
    helper.set_model_props(model, {"names": names, "imgsz": f"[{S}, {S}]"})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return YoloDetector("tiny", make_model(tmp_path_factory.mktemp("m") / "model.onnx"), 0.3, 0.5, device="cpu")


def grey(w, h, v=0):
    return Image.new("RGB", (w, h), (v, v, v))


# -- decoding and rescaling ------------------------------------------------------------------
@pytest.mark.parametrize("size, a, b", [
    ((64, 64), (8, 8, 24, 24), (40, 24, 56, 56)),
    ((128, 64), (16, 8, 48, 24), (80, 24, 112, 56)),       # wide: x doubles
    ((64, 128), (8, 16, 24, 48), (40, 48, 56, 112)),       # tall: y doubles
    ((200, 50), (25, 6, 75, 19), (125, 19, 175, 44)),      # x * 3.125, y * 0.78125, rounded
])
def test_boxes_come_back_on_the_original_picture(detector, size, a, b):
    dets = detector.detect([grey(*size)])[0]
    assert dets == [Detection(a, "person", pytest.approx(0.9)), Detection(b, "person", pytest.approx(0.7)),
                    Detection(dets[2].box, "other", pytest.approx(0.6))]
    assert all(isinstance(v, int) for d in dets for v in d.box)
    box, label, score = dets[0]  # unpacks like imgutils' ((x0, y0, x1, y1), label, score)
    assert (box, label) == (a, "person")


def test_boxes_are_clipped_to_the_picture():
    out = np.zeros((6, 1), np.float32)
    out[:, 0] = (60, 4, 20, 16, 0.9, 0.0)  # corners (50, -4, 70, 12) on 64x64
    assert decode(out, ["a", "b"], 0.3, 0.5, (640, 320), (64, 64)) == [
        Detection((500, 0, 640, 60), "a", pytest.approx(0.9))]


def test_end_to_end_output_rows_are_read_too():
    out = np.array([[8, 8, 24, 24, 0.9, 1], [9, 9, 24, 24, 0.8, 1], [40, 40, 50, 50, 0.2, 0]], np.float32)
    assert decode(out, ["a", "b"], 0.25, 0.7, (128, 128), (64, 64)) == [
        Detection((16, 16, 48, 48), "b", pytest.approx(0.9))]


def test_output_that_does_not_fit_the_labels_is_refused():
    with pytest.raises(KilnError, match=r"neither \[4\+3, N\]"):
        decode(np.zeros((6, 5)), ["a", "b", "c"], 0.3, 0.5, (64, 64), (64, 64))


# -- NMS and thresholds -----------------------------------------------------------------------
def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.5, classes=np.array([0, 0, 0, 1])).tolist() == [1, 2, 3]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_matches_the_plain_greedy_definition_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (400, 2))], axis=1)
    scores, classes = rng.uniform(size=400), rng.integers(0, 3, 400)
    for cls in (None, classes):
        order = np.argsort(-scores, kind="stable")
        ious = iou_matrix(boxes[order], boxes[order], plus_one=True)
        if cls is not None:
            ious = np.where(cls[order][:, None] == cls[order][None, :], ious, 0.0)
        alive = np.ones(len(order), bool)
        for i in range(len(order)):  # the textbook loop: each survivor removes what it overlaps
            if alive[i]:
                alive[i + 1:] &= ious[i, i + 1:] <= 0.5
        assert nms(boxes, scores, 0.5, classes=cls).tolist() == order[alive].tolist()


def test_iou_counts_pixels_inclusively_like_imgutils():
    a, b = np.array([[0, 0, 9, 9]]), np.array([[5, 0, 14, 9]])
    assert iou_matrix(a, b, plus_one=True)[0, 0] == pytest.approx(50 / 150)
    assert iou_matrix(a, b)[0, 0] == pytest.approx(36 / 126)
    assert xywh_to_xyxy(np.array([16, 16, 16, 8])).tolist() == [8, 12, 24, 20]


def test_iou_equal_to_the_threshold_is_kept_above_is_dropped():
    boxes = np.array([[0, 0, 9, 9], [5, 0, 14, 9]], float)  # inclusive IoU exactly 1/3
    assert nms(boxes, np.array([0.9, 0.8]), 1 / 3).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.33).tolist() == [0]


def test_confidence_threshold_is_strict_and_can_be_overridden(detector):
    labels = lambda conf: [(d.label, round(d.score, 2)) for d in detector.detect([grey(64, 64)], conf=conf)[0]]
    assert labels(0.3) == [("person", 0.9), ("person", 0.7), ("other", 0.6)]
    assert labels(0.6) == [("person", 0.9), ("person", 0.7)]  # 0.6 is not above 0.6
    assert len(labels(0.2)) == 4  # D (0.25) now passes; BRIGHT on black is exactly 0.2: out
    everything = detector.detect([grey(64, 64)], conf=0.1, iou=0.95)[0]
    assert len(everything) == 6  # A' is back once the IoU threshold allows it (BRIGHT 0.2 too)


def test_default_thresholds_are_imgutils_defaults():
    got = {k: (s.repo_id, s.model, s.conf, s.iou) for k, s in DETECTORS.items()}
    assert got == {"person": ("deepghs/anime_person_detection", "person_detect_v1.1_m", 0.3, 0.5),
                   "head": ("deepghs/anime_head_detection", "head_detect_v2.0_s", 0.4, 0.7),
                   "halfbody": ("deepghs/anime_halfbody_detection", "halfbody_detect_v1.0_s", 0.5, 0.7)}


# -- preprocessing and batching -----------------------------------------------------------------
def test_prepare_stretches_to_rgb_chw_in_0_1_and_puts_alpha_on_white():
    img = Image.new("RGB", (128, 32), (255, 0, 0))
    img.paste((0, 0, 255), (64, 0, 128, 32))
    arr = prepare(img, (64, 64))
    assert arr.shape == (3, 64, 64) and arr.dtype == np.float32
    assert arr[:, 32, 0].tolist() == [1.0, 0.0, 0.0] and arr[:, 32, 63].tolist() == [0.0, 0.0, 1.0]
    assert arr[:, 0, 0].tolist() == [1.0, 0.0, 0.0]  # stretched, no letterbox band
    clear = prepare(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), (64, 64))
    assert np.all(clear == 1.0)


def test_dynamic_size_follows_imgutils_rounding():
    assert target_size((1000, 800), (640, 640)) == (640, 640)
    assert target_size((2000, 1000), (1216, 1216), dynamic=True) == (1216, 608)
    assert target_size((300, 200), (640, 640), dynamic=True) == (320, 224)  # never enlarged, aligned to 32


def test_batches_match_one_at_a_time_and_fixed_batch_models(detector, tmp_path):
    pics = [grey(64, 64, 255), grey(100, 50, 0), grey(50, 100, 255), Image.new("RGBA", (30, 90), (0, 0, 0, 0))]
    together = detector.detect(pics)
    assert together == [detector.detect([p])[0] for p in pics]
    assert [len(d) for d in together] == [4, 3, 4, 4]  # BRIGHT (0.8) passes on white pictures only
    assert together[0][1] == Detection((0, 0, 64, 64), "person", pytest.approx(0.8))
    fixed = YoloDetector("one", make_model(tmp_path / "one.onnx", batch=1), 0.3, 0.5, device="cpu")
    assert fixed.max_batch == 1 and "fixed to 1" in fixed.fallback
    assert fixed.detect(pics) == together
    fixed_hw = YoloDetector("hw", make_model(tmp_path / "hw.onnx"), 0.3, 0.5, device="cpu", dynamic=True)
    assert not fixed_hw.dynamic and fixed_hw.detect(pics) == together  # a fixed 64x64 input leaves no choice
    dyn = YoloDetector("dyn", make_model(tmp_path / "dyn.onnx", hw=("h", "w")), 0.3, 0.5, device="cpu", dynamic=True)
    assert dyn.dynamic and dyn.size == (S, S)  # from the imgsz metadata
    grouped = dyn.detect(pics)  # prepared sizes 64x64, 64x32, 32x64, 32x64: three runs, the last a batch of 2
    assert grouped == [dyn.detect([p])[0] for p in pics]
    assert grouped[1][0].box == (12, 12, 38, 38)  # A on 64x32, back on 100x50 (12.5 rounds to even)


def test_detect_files_reports_unreadable_files_and_goes_on(detector, tmp_path):
    grey(128, 64, 255).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a picture")
    grey(64, 128).save(tmp_path / "c.jpg")
    got = dict(detector.detect_files([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.jpg"], batch_size=2))
    assert got[0][0].box == (16, 8, 48, 24) and got[2][0].box == (8, 16, 24, 48)
    assert isinstance(got[1], KilnError) and "b.png" in str(got[1])


# -- loading -------------------------------------------------------------------------------------
@pytest.fixture()
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_local_folder_with_the_model_loads(tmp_path):
    make_model(tmp_path / "heads" / "head_detect_v2.0_s" / "model.onnx", labels=("head",))
    det = load_detector("head", local_dir=tmp_path / "heads", device="cpu")
    assert (det.labels, det.conf, det.iou, det.name) == (["head"], 0.4, 0.7, "head:head_detect_v2.0_s")
    assert det.origin.startswith("folder ")


def test_missing_model_folder_names_the_file_and_where_to_get_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KilnError) as e:
        load_detector("person", local_dir=tmp_path / "empty")
    msg = str(e.value)
    for part in ("model.onnx", str(tmp_path / "empty"), "person_detect_v1.1_m/model.onnx",
                 "https://huggingface.co/deepghs/anime_person_detection"):
        assert part in msg, part


def test_hub_model_missing_offline_says_what_to_put_where(tmp_path, offline):
    with pytest.raises(KilnError) as e:
        load_detector("halfbody", cache_dir=str(tmp_path / "hf"))
    msg = str(e.value)
    for part in ("HF_HUB_OFFLINE", str(tmp_path / "hf" / "models--deepghs--anime_halfbody_detection"),
                 "hf download deepghs/anime_halfbody_detection halfbody_detect_v1.0_s/model.onnx --revision main",
                 "local_dir"):
        assert part in msg, part


def test_hub_cache_works_offline_and_names_the_commit(tmp_path, offline):
    repo = tmp_path / "hf" / "models--deepghs--anime_person_detection"
    make_model(repo / "snapshots" / COMMIT / "person_detect_v1.1_s" / "model.onnx", labels=("person",))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    det = load_detector("person", "person_detect_v1.1_s", cache_dir=str(tmp_path / "hf"), device="cpu")
    assert det.origin == f"hub deepghs/anime_person_detection@{COMMIT}"
    assert det.detect([grey(64, 64)])[0][0] == Detection((8, 8, 24, 24), "person", pytest.approx(0.9))


def test_unreachable_hub_gives_the_clear_error(tmp_path, unreachable_hub):
    with pytest.raises(KilnError, match=f"{unreachable_hub} cannot be reached"):
        load_detector("head", cache_dir=str(tmp_path / "hf"))
