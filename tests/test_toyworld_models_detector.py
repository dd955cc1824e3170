"""The committed toy-world detectors (lorakiln/toyworld/weights/detectors/{person,head,halfbody})
run through kiln's YOLO loader and runner (`vision.detectors.load_detector`) and find the boxes the
renderer knows, on seeds they were never trained or measured on. Thresholds leave a wide margin
below the measured quality in docs/toyworld.md."""

import pytest

from lorakiln.toyworld import HELD_OUT, Mix, generate
from lorakiln.toyworld.train.detector import KINDS, match
from lorakiln.toyworld.weights import DETECTORS
from lorakiln.vision.detectors import load_detector

FRESH_SEED = 4343  # training used seed 0, the measurements seeds 100000+


@pytest.mark.parametrize("kind", KINDS)
def test_detector_finds_the_rendered_boxes(kind):
    det = load_detector(kind, local_dir=DETECTORS / kind)
    assert det.labels == [kind] or list(det.labels) == [kind]
    samples = list(generate(60, FRESH_SEED, characters=list(HELD_OUT), mix=Mix(anonymous=0.3, two_figures=0.35)))
    found = det.detect([s.image for s in samples])
    tp = nd = nt = 0
    for s, dets in zip(samples, found):
        a, b, c = match([d.box for d in dets], [getattr(f, kind) for f in s.boxes])
        tp, nd, nt = tp + a, nd + b, nt + c
    assert nt > 70  # about a third of the pictures show two girls
    assert tp / nt >= 0.85 and tp / nd >= 0.85, (kind, tp, nd, nt)


def test_two_girls_give_two_persons():
    det = load_detector("person", local_dir=DETECTORS / "person")
    pairs = [s for s in generate(40, FRESH_SEED + 1, mix=Mix(two_figures=1.0)) if len(s.boxes) == 2]
    found = det.detect([s.image for s in pairs])
    assert sum(len(d) == 2 for d in found) >= 0.8 * len(pairs)
