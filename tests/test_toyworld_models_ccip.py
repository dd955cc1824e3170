"""The committed toy-world identity model (lorakiln/toyworld/weights/ccip) loads through kiln's
real CCIP code path (ccip_backend -> CcipEmbedder) and tells the held-out characters, which it
never saw, apart in other outfits, views, framings, backgrounds and styles. Thresholds leave a
wide margin below the measured accuracy in docs/toyworld.md."""

import json

import numpy as np

from lorakiln.evaluate.embed import ccip_backend
from lorakiln.toyworld import HELD_OUT, Mix, generate
from lorakiln.toyworld.weights import CCIP

FRESH_SEED = 4242  # training and measuring used other seeds
LORA_LIKE = Mix(anonymous=0.0, two_figures=0.0)


def _embedder():
    backend = ccip_backend("ignored", str(CCIP), "main", None, None, "cpu")
    assert backend.kind == "ccip" and backend.threshold == json.loads((CCIP / "metrics.json").read_text())["threshold"]
    return backend, backend.load()


def test_files_in_ccip_layout():
    for f in ("model_feat.onnx", "model_metrics.onnx", "metrics.json"):
        assert (CCIP / f).is_file()
    assert (CCIP / "model_feat.onnx").stat().st_size < 5_000_000
    t = json.loads((CCIP / "metrics.json").read_text())["threshold"]
    assert 0.0 < t < 2.0


def test_held_out_characters_same_and_different():
    backend, emb = _embedder()
    images, labels = [], []
    for i, c in enumerate(HELD_OUT):
        for s in generate(8, FRESH_SEED, characters=[c], mix=LORA_LIKE):
            images.append(s.image)
            labels.append(i)
    labels = np.array(labels)
    feats = emb.features(images)
    diff = emb.differences(feats, feats)
    assert diff.shape == (32, 32) and np.allclose(np.diag(diff), 0, atol=1e-4)
    iu = np.triu_indices(32, k=1)
    same = labels[iu[0]] == labels[iu[1]]
    is_same = diff[iu] <= backend.threshold
    same_acc, diff_acc = is_same[same].mean(), (~is_same[~same]).mean()
    assert same_acc >= 0.75 and diff_acc >= 0.9, (same_acc, diff_acc)


def test_demo_character_matches_itself_across_pictures_and_not_the_others():
    """What kiln eval's fidelity asks: each sample against the reference pictures."""
    backend, emb = _embedder()
    refs = [s.image for s in generate(6, FRESH_SEED + 1, characters=[HELD_OUT[0]], mix=LORA_LIKE)]
    others = [s.image for c in HELD_OUT[1:] for s in generate(3, FRESH_SEED + 2, characters=[c], mix=LORA_LIKE)]
    mine = [s.image for s in generate(6, FRESH_SEED + 3, characters=[HELD_OUT[0]], mix=LORA_LIKE)]
    r = emb.features(refs)
    share_same = (emb.differences(emb.features(mine), r) <= backend.threshold).mean()
    share_other = (emb.differences(emb.features(others), r) <= backend.threshold).mean()
    assert share_same >= 0.7 and share_other <= 0.15, (share_same, share_other)
