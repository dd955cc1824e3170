"""Tiled super-resolution on tiny ONNX networks built here (onnx.helper): seams against an untiled
run, scale/border/alignment measurement, transparency, upscale_to sizes, loader messages."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from lorakiln.core.errors import KilnError  # noqa: E402
from lorakiln.vision.tiling import spans, upscale_tiled, window  # noqa: E402
from lorakiln.vision.upscale import OnnxUpscaler, plan_passes, upscale_image, upscale_to  # noqa: E402
from lorakiln.vision.upscalers import load_upscaler  # noqa: E402


# -- tiny networks -------------------------------------------------------------------------------
def _conv(name: str, inp: str, out: str, k: int, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3 / k, (3, 3, k, k)).astype(np.float32)
    w[np.arange(3), np.arange(3), k // 2, k // 2] += 0.6  # mostly the pixel itself, plus texture
    b = rng.normal(0, 0.05, 3).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    node = helper.make_node("Conv", [inp, f"{name}_w", f"{name}_b"], [out], pads=[k // 2] * 4)
    return [node], inits


def build_sr(path: Path, scale: int = 2, *, k_in: int = 5, k_out: int = 3, crop: int = 0, align: int = 0,
             batch: str | int = "n", metadata: dict | None = None, six_d: bool = False,
             one_inside: bool = False) -> Path:
    """conv k_in -> tanh -> nearest resize x scale -> conv k_out -> sigmoid-ish clamp; optionally
    cut `crop` output pixels a side (waifu2x-like), demand sides divisible by `align`
    (SpaceToDepth/DepthToSpace), or return CDC's 6-D layout."""
    nodes, inits = [], []
    src = "x"
    if align:
        nodes += [helper.make_node("SpaceToDepth", [src], ["s2d"], blocksize=align),
                  helper.make_node("DepthToSpace", ["s2d"], ["d2s"], blocksize=align)]
        src = "d2s"
    n, i = _conv("c1", src, "h1", k_in, 1)
    nodes += n + [helper.make_node("Tanh", ["h1"], ["h1t"])]
    inits += i
    inits.append(numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales"))
    nodes.append(helper.make_node("Resize", ["h1t", "", "scales"], ["up"], mode="nearest"))
    n, i = _conv("c2", "up", "h2", k_out, 2)
    nodes += n
    inits += i
    nodes.append(helper.make_node("Clip", ["h2", "lo", "hi"], ["y4"]))
    inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
              numpy_helper.from_array(np.array(1, np.float32), "hi")]
    last = "y4"
    if one_inside:  # declares a dynamic batch but reshapes to batch 1: fails on batches of several
        inits.append(numpy_helper.from_array(np.array([1, 3, 0, 0], np.int64), "one"))
        nodes.append(helper.make_node("Reshape", [last, "one"], ["y1"]))
        last = "y1"
    if crop:
        inits += [numpy_helper.from_array(np.array([crop, crop], np.int64), "st"),
                  numpy_helper.from_array(np.array([-crop, -crop], np.int64), "en"),
                  numpy_helper.from_array(np.array([2, 3], np.int64), "ax")]
        nodes.append(helper.make_node("Slice", [last, "st", "en", "ax"], ["yc"]))
        last = "yc"
    if six_d:  # [n, 3, H*s, W*s] -> [n, 3, s, H, s, W] by a plain reshape (CDC's layout)
        inits += [numpy_helper.from_array(np.array([0, 1, 2, 3], np.int64), "idx"),
                  numpy_helper.from_array(np.array([scale], np.int64), "sc")]
        nodes += [helper.make_node("Shape", ["x"], ["shp"]),
                  helper.make_node("Gather", ["shp", "idx"], ["nchw"]),
                  helper.make_node("Split", ["nchw"], ["d0", "d1", "d2", "d3"], axis=0, num_outputs=4),
                  helper.make_node("Concat", ["d0", "d1", "sc", "d2", "sc", "d3"], ["shape6"], axis=0),
                  helper.make_node("Reshape", [last, "shape6"], ["y6"])]
        last = "y6"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, "h", "w"])
    y = helper.make_tensor_value_info(last, TensorProto.FLOAT, [batch, 3] + [f"d{i}" for i in range(4 if six_d else 2)])
    model = helper.make_model(helper.make_graph(nodes, "sr", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((h, w, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def sr2(tmp_path_factory) -> OnnxUpscaler:
    return OnnxUpscaler(build_sr(tmp_path_factory.mktemp("m") / "sr2.onnx", 2))


# -- tiling geometry -----------------------------------------------------------------------------
@pytest.mark.parametrize("n,tile,overlap",
                         [(77, 32, 8), (50, 32, 8), (33, 32, 8), (32, 32, 8), (1000, 512, 32), (9, 64, 8)])
@pytest.mark.parametrize("blend", ["feather", "crop"])
def test_windows_sum_to_one_and_cores_fit(n, tile, overlap, blend):
    cores = spans(n, tile, overlap)
    assert cores[0][0] == 0 and cores[-1][1] == n
    assert all(a < b and b == c for (a, b), (c, _) in zip(cores, cores[1:] + [(n, n)]))
    assert all(b - a + 2 * overlap <= tile or len(cores) == 1 for a, b in cores)
    for s in (1, 2, 3):
        total = np.zeros(n * s)
        for a, b in cores:
            ea, eb = max(0, a - overlap), min(n, b + overlap)
            total[ea * s:eb * s] += window((a, b), (ea, eb), n, s, overlap, blend)
        np.testing.assert_allclose(total, 1.0, atol=1e-6)


# -- tiled equals untiled, seams included --------------------------------------------------------
@pytest.mark.parametrize("blend", ["feather", "crop"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("size", [(50, 77), (24, 100), (61, 33)])
def test_tiled_matches_untiled(sr2, blend, batch, size):
    img = _picture(*size)
    whole = sr2.run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    calls = []
    tiled = upscale_tiled(img, sr2.run, 2, tile=32, overlap=8, batch=batch, blend=blend,
                          progress=lambda d, t: calls.append((d, t)), out_dtype=np.float32)
    assert tiled.shape == whole.shape == (size[0] * 2, size[1] * 2, 3)
    err = np.abs(tiled - whole)
    assert err.max() < 1e-5
    rows, cols = spans(size[0], 32, 8), spans(size[1], 32, 8)
    border_rows = [a * 2 + d for a, _ in rows[1:] for d in range(-8, 8)]
    border_cols = [a * 2 + d for a, _ in cols[1:] for d in range(-8, 8)]
    assert len(rows) * len(cols) > 1
    if border_rows:
        assert err[border_rows].max() < 1e-5
    if border_cols:
        assert err[:, border_cols].max() < 1e-5
    assert [d for d, _ in calls] == list(range(1, len(rows) * len(cols) + 1))
    assert {t for _, t in calls} == {len(rows) * len(cols)}


@pytest.mark.parametrize("kw", [dict(scale=4, crop=8), dict(scale=2, align=16), dict(scale=4, six_d=True)])
def test_tiled_matches_untiled_with_border_alignment_and_6d(tmp_path, kw):
    model = OnnxUpscaler(build_sr(tmp_path / "m.onnx", **kw))
    img = _picture(45, 70, seed=5)
    whole = model.run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    tiled = upscale_tiled(img, model.run, model.scale, tile=32, overlap=8, batch=2, out_dtype=np.float32)
    assert np.abs(tiled - whole).max() < 1e-5


def test_feather_spreads_what_a_too_small_overlap_leaves(tmp_path):
    """Receptive field (radius 5 input px) beyond the context: both joins differ from the untiled
    run near borders; feathering never makes the step across a border larger than cropping."""
    wide = OnnxUpscaler(build_sr(tmp_path / "wide.onnx", 2, k_in=11, k_out=3))
    img = _picture(40, 90, seed=3)
    whole = wide.run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    steps = {}
    for blend in ("feather", "crop"):
        out = upscale_tiled(img, wide.run, 2, tile=24, overlap=4, blend=blend, out_dtype=np.float32)
        err = out - whole
        steps[blend] = np.abs(np.diff(err, axis=1)).max()  # jump of the error between neighbouring columns
        assert np.abs(err).max() < 0.5
    assert steps["feather"] < steps["crop"]


# -- measuring the network -----------------------------------------------------------------------
def test_scale_border_and_alignment_measured(tmp_path):
    assert (OnnxUpscaler(build_sr(tmp_path / "a.onnx", 2)).scale, OnnxUpscaler(tmp_path / "a.onnx").border) == (2, 0)
    w2x = OnnxUpscaler(build_sr(tmp_path / "b.onnx", 4, crop=8))  # cuts 8 output px = 2 input px a side
    assert (w2x.scale, w2x.border, w2x.align) == (4, 2, 1)
    img = _picture(30, 41)
    out = upscale_tiled(img, w2x.run, 4, tile=32, overlap=8, out_dtype=np.float32)
    assert out.shape == (120, 164, 3)
    aligned = OnnxUpscaler(build_sr(tmp_path / "c.onnx", 2, align=16))
    assert (aligned.scale, aligned.border, aligned.align) == (2, 0, 16)
    assert aligned.run(img.transpose(2, 0, 1)[None]).shape == (1, 3, 60, 82)
    cdc = OnnxUpscaler(build_sr(tmp_path / "d.onnx", 4, six_d=True))
    assert cdc.scale == 4 and cdc.run(img.transpose(2, 0, 1)[None]).shape == (1, 3, 120, 164)
    meta = OnnxUpscaler(build_sr(tmp_path / "e.onnx", 2, metadata={"scale": "2"}))
    assert meta.scale == 2
    with pytest.raises(KilnError, match="metadata says scale 4"):
        OnnxUpscaler(build_sr(tmp_path / "f.onnx", 2, metadata={"scale": "4"}))


def test_fixed_batch_runs_one_tile_at_a_time(tmp_path):
    one = OnnxUpscaler(build_sr(tmp_path / "one.onnx", 2, batch=1))
    assert one.max_batch == 1
    img = Image.fromarray((_picture(40, 50) * 255).astype(np.uint8))
    out = upscale_image(img, one, tile=32, overlap=8, batch=8)
    assert out.size == (100, 80) and out.mode == "RGB"


def test_a_failing_batch_falls_back_to_one_tile_at_a_time(tmp_path):
    model = OnnxUpscaler(build_sr(tmp_path / "one.onnx", 2, one_inside=True))
    assert model.max_batch is None
    img = _picture(40, 70)
    whole = model.run(img.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    tiled = upscale_tiled(img, model.run, 2, tile=32, overlap=8, batch=4, out_dtype=np.float32)
    assert np.abs(tiled - whole).max() < 1e-5
    assert model.max_batch == 1 and "a batch of" in model.fallback


def test_bgr_models_get_channels_swapped(sr2):
    bgr = OnnxUpscaler(sr2.path, bgr=True)
    x = _picture(10, 12).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(bgr.run(x), sr2.run(x[:, ::-1].copy())[:, ::-1], atol=1e-6)


# -- pictures --------------------------------------------------------------------------------------
def test_alpha_is_kept_and_resized(sr2):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = (_picture(30, 40) * 255).astype(np.uint8)
    rgba[:, 20:, 3] = 255
    out = upscale_image(Image.fromarray(rgba, "RGBA"), sr2, tile=32, overlap=8)
    assert out.mode == "RGBA" and out.size == (80, 60)
    alpha = np.asarray(out.getchannel("A"))
    assert alpha[:, :34].max() == 0 and alpha[:, 46:].min() == 255  # Lanczos reaches 3 input px
    plain = upscale_image(Image.fromarray(rgba[..., :3]), sr2, tile=32, overlap=8)
    assert plain.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(out.convert("RGB")))


@pytest.mark.parametrize("size,target,scale,want", [
    ((40, 30), 100, 2, (2, (133, 100))), ((30, 40), 100, 4, (1, (100, 133))), ((64, 64), 64, 2, (0, (64, 64))),
    ((500, 300), 1024, 2, (2, (1707, 1024))), ((17, 900), 68, 4, (1, (68, 3600))), ((31, 31), 32, 2, (1, (32, 32))),
])
def test_plan_passes(size, target, scale, want):
    assert plan_passes(size, target, scale) == want


def test_upscale_to_lands_on_the_size(sr2):
    img = Image.fromarray((_picture(30, 40) * 255).astype(np.uint8))
    seen = []
    out = upscale_to(img, 100, sr2, tile=32, overlap=8, pass_progress=lambda i, n: (lambda d, t: seen.append(i)))
    assert out.size == (133, 100)
    assert sorted(set(seen)) == [0, 1]
    assert upscale_to(out, 90, sr2) is out


# -- loading -----------------------------------------------------------------------------------------
def test_loads_file_folder_and_refuses_pt(tmp_path):
    build_sr(tmp_path / "model.onnx", 2)
    assert load_upscaler(tmp_path).scale == 2
    assert load_upscaler(tmp_path / "model.onnx").scale == 2
    (tmp_path / "net.pt").write_bytes(b"not really")
    with pytest.raises(KilnError, match="TorchScript"):
        load_upscaler(tmp_path / "net.pt")
    with pytest.raises(KilnError, match="no such file"):
        load_upscaler(tmp_path / "nothing.onnx")


def test_missing_hub_model_names_the_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KilnError) as e:
        load_upscaler("deepghs/cdc_anime_onnx", filename="HGSR-MHR-anime-aug_X4_320.onnx", cache_dir=str(tmp_path))
    msg = str(e.value)
    assert "HGSR-MHR-anime-aug_X4_320.onnx" in msg and "hf download deepghs/cdc_anime_onnx" in msg
    assert "HF_HUB_OFFLINE" in msg and str(tmp_path) in msg


def _spandrel_imports() -> bool:
    try:
        importlib.import_module("spandrel")
    except Exception:  # noqa: BLE001 - torchvision can fail with other errors than ImportError
        return False
    return True


@pytest.mark.skipif(_spandrel_imports(), reason="spandrel imports here: the missing-extra message cannot show")
def test_pth_without_spandrel_names_the_extra(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, tmp_path / "4x_anime.pth")
    with pytest.raises(KilnError) as e:
        load_upscaler(tmp_path / "4x_anime.pth")
    assert "pip install spandrel" in str(e.value) and "torchvision" in str(e.value)


@pytest.mark.skipif(not _spandrel_imports(), reason="spandrel (optional extra) does not import here")
def test_spandrel_loads_a_small_esrgan(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "tiny.safetensors")
    up = load_upscaler(tmp_path / "tiny.safetensors", device="cpu")
    assert up.scale == 2
    img = _picture(20, 30)
    with torch.inference_mode():
        whole = up.run(img.transpose(2, 0, 1)[None].copy())[0].transpose(1, 2, 0)
    tiled = upscale_tiled(img, up.run, 2, tile=32, overlap=8, out_dtype=np.float32)
    assert tiled.shape == (40, 60, 3) and np.isfinite(tiled).all() and whole.shape == tiled.shape
