"""Benchmark: tiled vs untiled super-resolution on the same ONNX network and picture.

The network is built here with onnx.helper (random weights, fixed seed): an ESPCN-like 2x
upscaler, conv 5x5 3->C, tanh, three conv 3x3 C->C with ReLU, conv 3x3 C->12, DepthToSpace 2
(receptive field radius 6 input pixels). It takes NCHW float32 RGB 0-1 with a dynamic batch,
height and width, like deepghs' ONNX upscalers.

Variants, each in its own process so its peak memory is its own (PeakRSS: the kernel's
high-water mark, reset at entry, as in bench/train_step.py):

    untiled      the whole picture through the network at once (what a plain runner does)
    tiled        lorakiln.vision.tiling, --tile/--overlap, feather join, one tile at a time
    tiled-b4     the same, tiles batched by 4
    tiled-crop   hard-crop join instead of feathering

It prints seconds per picture, peak RSS growth, their ratio to `untiled`, and the largest
difference from the untiled output (8-bit levels, and in float before rounding).

    .venv/bin/python bench/upscale.py [--size 768] [--channels 32] [--tile 256] [--overlap 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peak_rss import PeakRSS

VARIANTS = {"untiled": None, "tiled": ("feather", 1), "tiled-b4": ("feather", 4), "tiled-crop": ("crop", 1)}


def build(path: Path, channels: int) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, src = [], [], "x"
    layers = [(3, channels, 5, "Tanh")] + [(channels, channels, 3, "Relu")] * 3 + [(channels, 12, 3, None)]
    for i, (cin, cout, k, act) in enumerate(layers):
        w = rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"),
                  numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Conv", [src, f"w{i}", f"b{i}"], [f"c{i}"], pads=[k // 2] * 4))
        src = f"c{i}"
        if act:
            nodes.append(helper.make_node(act, [src], [f"a{i}"]))
            src = f"a{i}"
    nodes += [helper.make_node("DepthToSpace", [src], ["d"], blocksize=2, mode="CRD"),
              helper.make_node("Sigmoid", ["d"], ["y"])]
    graph = helper.make_graph(
        nodes, "espcn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h2", "w2"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def picture(size: int) -> np.ndarray:
    """A smooth picture with edges (blobs and stripes), float32 RGB 0-1."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    r = 0.5 + 0.5 * np.sin(12 * x + 3 * np.cos(7 * y))
    g = (np.sin(40 * (x + y)) > 0).astype(np.float32) * 0.8 + 0.1
    b = np.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) * 9)
    return np.ascontiguousarray(np.stack([r, g, b], -1), dtype=np.float32)


def child(args) -> None:
    import onnxruntime as ort

    ort_threads = args.threads
    from lorakiln.vision import upscale as up

    model = up.OnnxUpscaler(args.model, device="cpu")
    model.session = _session(args.model, ort_threads, ort)
    img = picture(args.size)
    how = VARIANTS[args.child]
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = _run(model, img, how, args, np.uint8)
        seconds = time.perf_counter() - t0
    np.save(args.out, out)
    print(json.dumps({"variant": args.child, "s": seconds, "peak_growth_mb": (mem.peak - mem.start) / 2**20,
                      "rss_mb": mem.peak / 2**20}))


def _session(path, threads, ort):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run(model, img, how, args, dtype):
    from lorakiln.vision.tiling import to_uint8, upscale_tiled

    if how is None:
        y = model.run(img.transpose(2, 0, 1)[None].copy())[0].transpose(1, 2, 0)
        return to_uint8(y) if dtype == np.uint8 else y
    blend, batch = how
    return upscale_tiled(img, model.run, model.scale, args.tile, args.overlap, batch, blend, out_dtype=dtype)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (0: its default)")
    p.add_argument("--child"), p.add_argument("--model"), p.add_argument("--out")
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp) / "espcn.onnx", args.channels)
        print(f"ESPCN-like 2x, {args.channels} channels, {args.size}x{args.size} -> {2 * args.size}x{2 * args.size}, "
              f"tile {args.tile} overlap {args.overlap}, CPU, {args.threads or 'default'} thread(s)")
        results = {}
        for v in VARIANTS:
            out = Path(tmp) / f"{v}.npy"
            cmd = [sys.executable, __file__, "--child", v, "--model", str(model), "--out", str(out)]
            cmd += [f"--{k}={getattr(args, k)}" for k in ("size", "tile", "overlap", "threads")]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{v}: failed\n{res.stderr[-2000:]}")
                continue
            results[v] = json.loads(res.stdout.strip().splitlines()[-1]) | {"out": np.load(out)}
        _report(results, _float_diffs(model, args))


def _float_diffs(model_path: Path, args) -> dict[str, float]:
    from lorakiln.vision.upscale import OnnxUpscaler

    model = OnnxUpscaler(model_path, device="cpu")
    img = picture(args.size)
    base = _run(model, img, None, args, np.float32)
    return {v: float(np.abs(_run(model, img, how, args, np.float32) - base).max())
            for v, how in VARIANTS.items() if how is not None}


def _report(results: dict, float_diff: dict[str, float]) -> None:
    base = results.get("untiled")
    print(f"{'variant':<12} {'s/picture':>10} {'x untiled':>10} {'peak MB':>9} {'x untiled':>10} "
          f"{'max diff (8-bit)':>17} {'max diff (float)':>17}")
    for v, r in results.items():
        ratio_t = r["s"] / base["s"] if base else float("nan")
        ratio_m = r["peak_growth_mb"] / base["peak_growth_mb"] if base else float("nan")
        d8 = int(np.abs(r["out"].astype(np.int16) - base["out"].astype(np.int16)).max()) if base else -1
        print(f"{v:<12} {r['s']:>10.2f} {ratio_t:>10.2f} {r['peak_growth_mb']:>9.0f} {ratio_m:>10.2f} "
              f"{d8:>17} {float_diff.get(v, 0.0):>17.2e}")


if __name__ == "__main__":
    main()
