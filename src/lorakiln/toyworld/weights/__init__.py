"""The toy world's trained models, committed with the repository (docs/toyworld.md, "The world's models").

    kiln tag --model $(python -c "from lorakiln.toyworld.weights import TAGGER; print(TAGGER)")

TAGGER  a WD-layout tagger folder: model.onnx + selected_tags.csv (64x64 input)
CCIP    a CCIP-layout identity model folder: model_feat.onnx + model_metrics.onnx + metrics.json
DETECTORS  person/, head/ and halfbody/, each a YOLO-layout model.onnx (kiln's vision.detectors)

Retrain with `python -m lorakiln.toyworld.train.tagger --out DIR --seed 0` and
`python -m lorakiln.toyworld.train.identity --out DIR --seed 0` and
`python -m lorakiln.toyworld.train.detector --out DIR --seed 0`.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
TAGGER = HERE / "tagger"
CCIP = HERE / "ccip"
DETECTORS = HERE / "detectors"
