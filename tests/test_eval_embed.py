"""Character-similarity backends: CCIP (tiny ONNX pair), tagger vector, descriptor; choice and caching."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress
from lorakiln.evaluate import descriptor
from lorakiln.evaluate.analysis import TaggerHandle, analyse, sidecar
from lorakiln.evaluate.embed import (
    CcipEmbedder,
    DescriptorEmbedder,
    TaggerEmbedder,
    ccip_backend,
    ccip_preprocess,
    choose_backend,
    descriptor_backend,
    locate_ccip,
)
from tiny_ccip import THRESHOLD, difference, feature, make_ccip_folder
from tiny_tagger import make_tagger_folder

RED, GREEN, PINK = (220, 30, 30), (30, 200, 60), (230, 60, 60)


def solid(c, size=(40, 48)):
    return Image.new("RGB", size, c)


def test_ccip_preprocess_is_clip_normalised_nchw():
    arr = ccip_preprocess(solid((255, 0, 128)), 16)
    assert arr.shape == (3, 16, 16) and arr.dtype == np.float32
    assert arr[:, 0, 0] == pytest.approx(feature((255, 0, 128)), abs=1e-5)


def test_ccip_pair_gives_the_known_differences(tmp_path):
    folder = make_ccip_folder(tmp_path / "ccip")
    name, files, origin = locate_ccip("ignored", str(folder))
    emb = CcipEmbedder(name, files, origin)
    assert emb.threshold == pytest.approx(THRESHOLD) and emb.size == 32 and emb.id == "ccip:ccip"
    f = emb.features([solid(RED), solid(GREEN), solid(PINK)])
    assert f.shape == (3, 3)
    assert f[0] == pytest.approx(feature(RED), abs=1e-4)
    d = emb.differences(f[:1], f[1:])
    assert d.shape == (1, 2)
    assert d[0, 0] == pytest.approx(difference(feature(RED), feature(GREEN)), abs=1e-4)
    assert d[0, 1] == pytest.approx(difference(feature(RED), feature(PINK)), abs=1e-4)
    assert d[0, 1] < THRESHOLD < d[0, 0]  # red ~ pink is "the same character", red vs green is not


def test_ccip_missing_files_say_what_and_where(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model_feat.onnx").write_bytes(b"x")
    with pytest.raises(KilnError, match="model_metrics.onnx, metrics.json missing"):
        locate_ccip("x", str(tmp_path / "half"))
    with pytest.raises(KilnError, match="ccip_local"):  # not in the (offline) cache
        locate_ccip("ccip-caformer-24-randaug-pruned", None, cache_dir=str(tmp_path / "hf"))


def test_auto_choice_falls_back_with_reasons(tmp_path):
    def no_ccip():
        raise KilnError("CCIP files not found")

    backend, notes = choose_backend("auto", {"ccip": no_ccip})
    assert backend.kind == "descriptor" and notes[0].startswith("ccip not used: CCIP files not found")
    assert any("tagger not used" in n for n in notes)
    folder = make_ccip_folder(tmp_path / "ccip", threshold=0.2)
    backend, notes = choose_backend("auto", {"ccip": lambda: ccip_backend("m", str(folder), "main", None, None,
                                                                          "cpu")})
    assert (backend.kind, backend.threshold, notes) == ("ccip", 0.2, [])
    with pytest.raises(KilnError):
        choose_backend("ccip", {"ccip": no_ccip})  # asked for explicitly: no silent fallback


def test_descriptor_sees_colour_layout_and_flatness():
    a, b = solid(RED, (64, 64)), solid(GREEN, (64, 64))
    busy = Image.new("RGB", (64, 64), RED)
    draw = ImageDraw.Draw(busy)
    for x in range(0, 64, 4):
        draw.line([(x, 0), (x, 63)], fill=(0, 0, 0))
    emb = DescriptorEmbedder()
    f = emb.features([a, a, b, busy])
    assert np.linalg.norm(f, axis=1) == pytest.approx(1.0, abs=1e-5)
    d = emb.differences(f, f)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6) and d[0, 2] > d[0, 3] > 0.05
    assert descriptor.border_energy(a) == 0.0 and descriptor.border_energy(busy) > 20


def test_tagger_vector_backend(tmp_path):
    from lorakiln.tagging.loading import identify, load_tagger, locate

    folder = make_tagger_folder(tmp_path / "tagger")
    spec, f = identify(str(folder))
    tagger = load_tagger(locate(spec, f))
    emb = TaggerEmbedder(tagger)
    feats = emb.features([solid((255, 255, 255)), solid((120, 190, 110))])
    assert feats.shape == (2, 12)
    names = [lb.name for lb in tagger.labels]
    assert feats[0, names.index("white_background")] > 0.5 > feats[1, names.index("white_background")]
    assert feats[1, names.index("outdoors")] > 0.5


def test_analysis_is_cached_per_part(tmp_path):
    from lorakiln.tagging.loading import identify, locate

    paths = []
    for i, c in enumerate([RED, GREEN]):
        p = tmp_path / f"{i}.png"
        solid(c).save(p)
        paths.append(p)
    spec, f = identify(str(make_tagger_folder(tmp_path / "tagger")))
    tagger = TaggerHandle(spec.name, locate(spec, f))
    prog = NullProgress()
    docs = analyse(paths, descriptor_backend(), tagger, prog)
    doc = json.loads(sidecar(paths[0]).read_text())
    assert set(doc) == {"style", "features", "tags"} and doc["tags"][spec.name]["1girl"] > 0.9
    assert docs[paths[0]]["style"]["border"] == 0.0
    prog2 = NullProgress()
    analyse(paths, descriptor_backend(), tagger, prog2)
    assert prog2.tasks == {}  # nothing new: no model run
    folder = make_ccip_folder(tmp_path / "ccip")
    prog3 = NullProgress()
    docs = analyse(paths, ccip_backend("m", str(folder), "main", None, None, "cpu"), tagger, prog3)
    assert prog3.tasks["analyse"].done == 2 and set(docs[paths[1]]["features"]) == {"descriptor:descriptor-v1",
                                                                                    "ccip:ccip"}
