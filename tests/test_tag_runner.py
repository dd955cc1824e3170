"""The ONNX runner on a tiny tagger with the WD v3 interface, loaded like the real models."""

import numpy as np
import pytest
from tiny_tagger import TAGS, logits, make_tagger_folder

from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import ConfigError, ItemError, KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.demo.images import Spec, make_image
from lorakiln.tagging.loading import identify, load_tagger, locate
from lorakiln.tagging.merge import initial_tags, store_scores, tag_categories, tag_scores
from lorakiln.tagging.preprocess import load_for_tagger
from lorakiln.tagging.wd import input_geometry, pick_providers, predict_files

BACKGROUNDS = ["white_background", "outdoors", "indoors"]


def _open(folder, device="cpu"):
    spec, local = identify(str(folder))
    return load_tagger(locate(spec, local), device)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Nine demo pictures (three per background) with known content, plus their expected tags."""
    d = tmp_path_factory.mktemp("imgs")
    paths, expected = [], []
    for i in range(9):
        bg = BACKGROUNDS[i % 3]
        spec = Spec(seed=i, outfit="coat", background=bg, width=[512, 576, 640][i % 3], height=640)
        p = d / f"{i}.png"
        make_image(spec).save(p)
        paths.append(p)
        expected.append(bg)
    return paths, expected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tagger_folder(tmp_path_factory.mktemp("m") / "tiny", size=64)


def _tag_all(tagger, paths, batch_size=4, floor=0.05):
    recs = []
    for i, res in sorted(predict_files(paths, tagger, batch_size=batch_size, workers=2), key=lambda x: x[0]):
        rec = ImageRecord(id=f"local-{i}", source="local")
        store_scores(rec, *tagger.scores(res, floor))
        recs.append(rec)
    return recs


def test_demo_pictures_get_the_tags_their_content_implies(tiny, images):
    tagger = _open(tiny)
    assert tagger.size == 64 and tagger.max_batch is None and tagger.providers == ["CPUExecutionProvider"]
    paths, backgrounds = images
    for rec, bg in zip(_tag_all(tagger, paths), backgrounds):
        tags = initial_tags(rec, TagConfig())
        scores = list(tag_scores(rec, TagConfig()).values())
        assert scores == sorted(scores, reverse=True) and tags[-1] == "long_hair"  # 0.45, the least sure
        assert set(tags) == {"1girl", "solo", "kilnchan", "long_hair", bg}, (bg, tags)
        assert rec.tagger.model == "local:tiny" and set(rec.tagger.rating) == {
            "general", "sensitive", "questionable", "explicit"}
        assert initial_tags(rec, TagConfig(threshold=0.5)) == [t for t in tags if t != "long_hair"]


def test_probabilities_match_the_models_numpy_twin(tiny, images):
    tagger = _open(tiny)
    x = np.stack([load_for_tagger(p, 64) for p in images[0][:3]])
    expected = 1 / (1 + np.exp(-logits(x.mean(axis=(1, 2)) / 255)))
    np.testing.assert_allclose(tagger.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_batched_and_single_runs_give_identical_scores(tiny, images):
    tagger = _open(tiny)
    one = _tag_all(tagger, images[0], batch_size=1)
    many = _tag_all(tagger, images[0], batch_size=4)
    assert [r.tagger for r in one] == [r.tagger for r in many]
    raw1 = dict(predict_files(images[0], tagger, batch_size=1))
    raw9 = dict(predict_files(images[0], tagger, batch_size=9))
    for i in raw1:
        np.testing.assert_allclose(raw1[i], raw9[i], rtol=0, atol=1e-6)


def test_model_with_batch_fixed_to_one_runs_one_at_a_time(tmp_path, tiny, images):
    fixed = _open(make_tagger_folder(tmp_path / "fixed", size=64, fixed_batch=True))
    assert fixed.max_batch == 1 and "fixed to 1" in fixed.fallback
    got = [r.tagger.general for r in _tag_all(fixed, images[0], batch_size=4)]
    assert got == [r.tagger.general for r in _tag_all(_open(tiny), images[0], batch_size=4)]


def test_model_failing_on_batches_falls_back_to_one_at_a_time(tmp_path, tiny, images):
    hidden = _open(make_tagger_folder(tmp_path / "hidden", size=64, hidden_batch_one=True))
    assert hidden.max_batch is None and hidden.fallback is None  # its input says any batch
    x = np.stack([load_for_tagger(p, 64) for p in images[0][:3]])
    np.testing.assert_allclose(hidden.predict(x), _open(tiny).predict(x), rtol=0, atol=1e-6)
    assert hidden.max_batch == 1 and hidden.fallback.startswith("a batch of")


def test_full_size_wd_v3_interface_at_448(tmp_path, images):
    """The real models' geometry: input `input` [batch, 448, 448, 3], output `output` [batch, n]."""
    wd = _open(make_tagger_folder(tmp_path / "wd448", size=448))
    assert (wd.input_name, wd.output_name, wd.size, wd.max_batch) == ("input", "output", 448, None)
    got = dict(predict_files(images[0][:3], wd, batch_size=3))
    x = np.stack([load_for_tagger(p, 448) for p in images[0][:3]])
    assert x.shape == (3, 448, 448, 3) and x.dtype == np.float32
    mean = x.astype(np.float64).mean(axis=(1, 2)) / 255  # 200,704 pixels: float32 sums differ by order
    expected = 1 / (1 + np.exp(-logits(mean)))
    np.testing.assert_allclose(np.stack([got[i] for i in range(3)]), expected, rtol=1e-4, atol=1e-5)


def test_input_size_comes_from_the_model(tmp_path, images):
    small = _open(make_tagger_folder(tmp_path / "s32", size=32))
    assert small.size == 32
    assert len(dict(predict_files(images[0][:2], small, batch_size=2))) == 2
    assert input_geometry(["batch", "height", "width", 3], "m") == (448, False)
    assert input_geometry([1, 448, 448, 3], "m") == (448, True)
    with pytest.raises(ConfigError, match=r"NHWC"):
        input_geometry(["batch", 3, 448, 448], "m.onnx")


def test_output_is_chosen_by_label_count_and_mismatched_labels_are_refused(tmp_path):
    emb = _open(make_tagger_folder(tmp_path / "emb", embedding_output=True))
    assert emb.output_name == "output"
    broken = make_tagger_folder(tmp_path / "broken")
    csv = (broken / "selected_tags.csv").read_text().splitlines()
    (broken / "selected_tags.csv").write_text("\n".join(csv[:-2]) + "\n")
    with pytest.raises(ConfigError, match=r"outputs 12 scores but the labels file has 10 rows"):
        _open(broken)
    (broken / "selected_tags.csv").write_text("id,tag\n1,solo\n")
    with pytest.raises(ConfigError, match=r"selected_tags.csv: expected a header with 'name' and 'category'"):
        _open(broken)
    (broken / "model.onnx").write_bytes(b"garbage")
    (broken / "selected_tags.csv").write_text("\n".join(csv) + "\n")
    with pytest.raises(ConfigError, match=r"model.onnx: cannot load the ONNX model"):
        _open(broken)


def test_unreadable_image_is_one_items_error(tiny, images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    paths = [images[0][0], bad, images[0][1], tmp_path / "missing.png"]
    res = dict(predict_files(paths, _open(tiny), batch_size=2))
    assert set(res) == {0, 1, 2, 3}
    assert isinstance(res[1], ItemError) and "broken.jpg" in str(res[1])
    assert isinstance(res[3], ItemError) and "missing" in res[3].problem
    assert res[0].shape == (len(TAGS),) and res[2].shape == (len(TAGS),)


def test_e621_adapter_reads_its_own_labels_and_categories(tmp_path, images):
    folder = make_tagger_folder(tmp_path / "z3d", e621=True, input_name="input_1:0",
                                output_name="predictions_sigmoid")
    spec, local = identify(str(folder))
    assert spec.label_format == "e621" and spec.labels_file == "tags-selected.csv"
    rec = _tag_all(load_tagger(locate(spec, local)), images[0][1:2])[0]  # an outdoors picture
    assert rec.tagger.rating == {}
    assert set(rec.tagger.character) == {"kilnfox"}
    cats = tag_categories(rec)
    assert cats["canine"] == "species" and cats["some_artist"] == "artist" and cats["bad_tag"] == "invalid"
    tags = initial_tags(rec, TagConfig(merge="tagger"))
    assert set(tags) == {"solo", "outdoors", "canine", "kilnfox", "some_artist"}  # invalid dropped


def test_providers_prefer_cuda_only_when_onnxruntime_has_it():
    assert pick_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers("auto", both) == both
    assert pick_providers("cpu", both) == ["CPUExecutionProvider"]
    with pytest.raises(KilnError, match="onnxruntime-gpu"):
        pick_providers("cuda", ["CPUExecutionProvider"])
