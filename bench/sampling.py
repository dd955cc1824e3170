"""Benchmark: the sampling engine behind `kiln sample / grid / eval`, each part against its baseline.

  1. batching: N pictures through the engine in batches of B (per-picture seeded generators, so
     the pictures are the same) against one picture per call (what a loop over A1111's API does);
  2. applying a LoRA: our merge-into-the-weights patch (W + wΔW once per group of pictures, exact
     restore) against the adapter's bypass forward (LyCORIS apply_to: extra matmuls at every step),
     same pictures; also the cost of one patch + restore on its own;
  3. `kiln eval` on a tiny project: the first run against a rerun that finds everything cached.

Defaults use the tiny SD1.5 family on the CPU (seconds). `--family sd15 --size 256` builds the
full-size SD1.5 architecture with random weights (no download) for realistic layer sizes.

    .venv/bin/python bench/sampling.py [--family tiny-sd15] [--size 64] [--n 8] [--batch 4] [--steps 6]
                                       [--threads 1] [--skip-eval]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lorakiln.core.progress import NullProgress
from lorakiln.evaluate.apply_lora import LoraPatcher, Use, load_lora
from lorakiln.evaluate.sampling import Engine, Job, LoraSpec, Settings
from lorakiln.train.families import FAMILIES
from lorakiln.train.network import NetworkSpec, create_network


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _lora(family, comps, path: Path):
    net = create_network(family, comps, NetworkSpec(algo="lora", dim=16, alpha=8), seed=0)
    with torch.no_grad():
        for _, p in net.named_parameters():
            p.add_(torch.randn_like(p) * 0.05)
    net.save(path, {**net.metadata(family, comps), "ss_output_name": "bench"}, dtype=torch.float32)
    return net


def bench_batching(engine: Engine, n: int, batch: int, s: Settings) -> dict:
    jobs = [Job("1girl, solo, portrait", "lowres", 1000 + i, s) for i in range(n)]
    out: dict = {}
    engine.batch_size = 1
    engine.render(jobs[:1], lambda j, im: None)  # warm-up
    one = _timed(lambda: engine.render(jobs, lambda j, im: out.setdefault(("one", j.seed), np.asarray(im))))
    engine.batch_size = batch
    many = _timed(lambda: engine.render(jobs, lambda j, im: out.setdefault(("many", j.seed), np.asarray(im))))
    diff = max(float(np.abs(out[("one", j.seed)].astype(int) - out[("many", j.seed)]).max()) for j in jobs)
    return {"one_per_call_s": one, "batched_s": many, "speedup": one / many, "max_pixel_diff": diff}


def bench_lora(family, comps, engine: Engine, lora_path: Path, net, n: int, s: Settings) -> dict:
    jobs_patch = [Job("1girl", "", 1 + i, Settings(s.sampler, s.steps, s.cfg, s.width, s.height, 1,
                                                    (LoraSpec(str(lora_path)),))) for i in range(n)]
    jobs_plain = [Job("1girl", "", 1 + i, s) for i in range(n)]
    got: dict = {}
    patch = _timed(lambda: engine.render(jobs_patch, lambda j, im: got.setdefault(("patch", j.seed), np.asarray(im))))
    net.apply_to()
    try:
        bypass = _timed(lambda: engine.render(jobs_plain, lambda j, im: got.setdefault(("bypass", j.seed),
                                                                                      np.asarray(im))))
    finally:
        net.restore()
    diff = max(float(np.abs(got[("patch", j.seed)].astype(int) - got[("bypass", j.seed)]).max()) for j in jobs_plain)
    patcher = LoraPatcher(family.lora_targets(comps, conv=True, text_encoder=True))
    lora = load_lora(lora_path)

    def once():
        with patcher.applied([Use(lora)]):
            pass

    once()
    one_patch = min(_timed(once) for _ in range(3))
    return {"patch_s": patch, "bypass_s": bypass, "speedup": bypass / patch, "max_pixel_diff": diff,
            "patch_restore_s": one_patch}


def bench_eval() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_run import make_dataset, make_run  # noqa: E402

    from lorakiln.services.evaluate import run_eval
    from lorakiln.services.project import init_project

    with tempfile.TemporaryDirectory() as tmp:
        fam = FAMILIES.get("tiny-sd15")
        p = init_project(Path(tmp) / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
        make_dataset(p.root)
        make_run(p.runs_dir, fam, fam.load("tiny-sd15"), scale=0.3)
        cfg = p.resolve("eval", {"steps": 6, "weights": [0.6, 1.0], "probes": {"probe_set": "quick", "seeds": [1]},
                                 "models": {"embedder": "descriptor"}})
        first = run_eval(p, None, cfg, NullProgress())
        again = run_eval(p, None, cfg, NullProgress())
    return {"first_s": first.seconds, "pictures": first.images, "rerun_s": again.seconds,
            "speedup": first.seconds / again.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="tiny-sd15")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-eval", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    fam = FAMILIES.get(a.family)
    comps = fam.load(a.family) if a.family.startswith("tiny") else fam.build_random(0)
    size = a.size or fam.default_resolution
    s = Settings("dpmpp_2m_karras", a.steps, 7.0, size, size, 1)
    engine = Engine(fam, comps, "cpu", a.batch)
    print(f"{a.family} {size}x{size}, {a.steps} steps, {a.n} pictures, {a.threads} thread(s)")
    b = bench_batching(engine, a.n, a.batch, s)
    print(f"batching: one per call {b['one_per_call_s']:.2f}s, batches of {a.batch} {b['batched_s']:.2f}s "
          f"-> {b['speedup']:.2f}x (max pixel difference {b['max_pixel_diff']:.0f})")
    with tempfile.TemporaryDirectory() as tmp:
        net = _lora(fam, comps, Path(tmp) / "bench.safetensors")
        engine.batch_size = a.batch
        r = bench_lora(fam, comps, engine, Path(tmp) / "bench.safetensors", net, a.n, s)
    print(f"LoRA: merged patch {r['patch_s']:.2f}s vs bypass forward {r['bypass_s']:.2f}s -> {r['speedup']:.2f}x "
          f"(max pixel difference {r['max_pixel_diff']:.0f}); one patch + restore {r['patch_restore_s'] * 1000:.0f} ms")
    if not a.skip_eval:
        e = bench_eval()
        print(f"kiln eval (tiny, {e['pictures']} pictures): first run {e['first_s']:.1f}s, cached rerun "
              f"{e['rerun_s']:.2f}s -> {e['speedup']:.0f}x")


if __name__ == "__main__":
    main()
