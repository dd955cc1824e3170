"""Benchmark: dataset vision (issue 12) on the toy world: detection and CCIP batched vs one at a
time, then `kiln filter --identity` and `kiln crop` end to end on a real project.

The pictures: N toy-world pictures (64x64), 80 % `kie_(kiln)` alone in full-body or cowboy-shot
framings, 20 % other held-out characters alone in any framing (lorakiln.toyworld.generate, fixed
seeds), the same set for every part. The models are the toy world's committed ones
(lorakiln.toyworld.weights): the person detector (YOLO layout, input [batch, 3, 64, 64]) and the
CCIP feature model (input [batch, 3, 64, 64]); both have a dynamic batch dimension.

Parts, each variant in its own process so its peak memory is its own (PeakRSS: the kernel's
high-water mark, reset at entry, as in bench/train_step.py):

    det-bK     YoloDetector.detect() on chunks of K pictures (K = 1 is the baseline)
    ccip-bK    CcipEmbedder.features() on chunks of K pictures ([filter] identity_batch is the
               batch the identity filter uses)
    import     `kiln import` of the folder (setup, timed for reference)
    filter     `kiln filter --identity`, toy CCIP through [filter] ccip_local
    crop       `kiln crop`, toy detectors through [crop] person_local/head_local/halfbody_local,
               min_side 16

The micro parts time in-memory pictures after one warm-up call, best of --repeat passes; the stages run the CLI in the
child process (decoding, manifest and writes included). onnxruntime's intra-op threads are pinned
to --threads in every child (a bench-local wrap of onnxruntime.InferenceSession; kiln's own
sessions use onnxruntime's default, one thread per core).

    OMP_NUM_THREADS=1 .venv/bin/python bench/vision.py [--n 1000] [--threads 1] [--batches 1,8,32]
    ./dev bench vision --n 200 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_rss import PeakRSS

OTHERS = ["tsubaki_(kiln)", "hotaru_(kiln)", "koharu_(kiln)"]


def pin_ort_threads(threads: int) -> None:
    """Every InferenceSession opened from now on in this process uses `threads` intra-op threads."""
    import onnxruntime as ort

    real = ort.InferenceSession

    class Pinned(real):
        def __init__(self, path, sess_options=None, *a, **k):
            opts = sess_options or ort.SessionOptions()
            if threads and not opts.intra_op_num_threads:
                opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            super().__init__(path, opts, *a, **k)

    ort.InferenceSession = Pinned


def samples(n: int):
    """(file stem, Sample) for the benchmark's n pictures: ~80 % kie, the rest other characters."""
    from lorakiln.toyworld import Mix, generate

    n_kie = round(n * 0.8)
    kie_mix = Mix(anonymous=0.0, two_figures=0.0, framing={"full_body": 0.6, "cowboy_shot": 0.4})
    for i, s in enumerate(generate(n_kie, 101, characters=["kie_(kiln)"], mix=kie_mix)):
        yield f"kie{i:05d}", s
    for i, s in enumerate(generate(n - n_kie, 102, characters=OTHERS, mix=Mix(anonymous=0.0, two_figures=0.0))):
        yield f"other{i:05d}", s


# -- children ------------------------------------------------------------------------------
def child_micro(args) -> dict:
    kind, batch = args.child.split("-b")
    batch = int(batch)
    pictures = [s.image.convert("RGB") for _, s in samples(args.n)]
    run = _detector(pictures) if kind == "det" else _ccip(pictures)
    run(pictures[:batch])  # warm-up: session allocations, first-run graph work
    times = []
    with PeakRSS() as mem:
        for _ in range(args.repeat):  # the best of `repeat` passes: the machine is shared
            t0 = time.perf_counter()
            found = 0
            for start in range(0, len(pictures), batch):
                found += run(pictures[start:start + batch])
            times.append(time.perf_counter() - t0)
    return {"variant": args.child, "s": min(times), "n": len(pictures), "found": found,
            "peak_growth_mb": (mem.peak - mem.start) / 2**20, "rss_mb": mem.peak / 2**20}


def _detector(pictures):
    from lorakiln.toyworld.weights import DETECTORS
    from lorakiln.vision.detectors import load_detector

    det = load_detector("person", local_dir=DETECTORS / "person", device="cpu")
    return lambda chunk: sum(len(d) for d in det.detect(chunk))


def _ccip(pictures):
    from lorakiln.evaluate.embed import ccip_backend
    from lorakiln.toyworld.weights import CCIP

    emb = ccip_backend("ccip", str(CCIP), "main", None, None, "cpu").load()
    return lambda chunk: len(emb.features(chunk))


def child_stage(args) -> dict:
    from lorakiln.cli import app as cli_app

    argv = ["kiln", "--project", args.project, *args.cli]
    sys.argv = argv
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        try:
            cli_app.main()
        except SystemExit as e:
            if e.code not in (None, 0):
                raise
        seconds = time.perf_counter() - t0
    return {"variant": args.child, "s": seconds, "peak_growth_mb": (mem.peak - mem.start) / 2**20,
            "rss_mb": mem.peak / 2**20}


def spawn(name: str, args, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", name, f"--n={args.n}", f"--threads={args.threads}",
           f"--repeat={args.repeat}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{name}: failed\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the end-to-end project ----------------------------------------------------------------
def make_project(tmp: Path, n: int) -> Path:
    from lorakiln.services.project import init_project
    from lorakiln.toyworld.weights import CCIP, DETECTORS

    src = tmp / "pictures"
    src.mkdir()
    for stem, s in samples(n):
        s.image.save(src / f"{stem}.png")
        (src / f"{stem}.txt").write_text(", ".join(s.tags.general))
    project = init_project(tmp / "proj", "kie", ["kie_kiln"], base=None, character="kie_(kiln)")
    project.set_section("filter", {"min_short_side": 0, "ccip_local": str(CCIP)})
    project.set_section("crop", {"person_local": str(DETECTORS / "person"), "head_local": str(DETECTORS / "head"),
                                 "halfbody_local": str(DETECTORS / "halfbody"), "min_side": 16})
    return src


def counts(root: Path, src: Path) -> dict:
    """Pictures kept and dropped (by the identity filter: other characters / kie; by other filters), crops."""
    from collections import Counter

    from lorakiln.core.hashing import sha256_file
    from lorakiln.core.records import Status
    from lorakiln.services.project import open_project

    others = {sha256_file(f) for f in src.glob("other*.png")}  # the import renames files; hashes stay
    m = list(open_project(root).manifest())
    originals = [r for r in m if not r.parent]
    dropped = [r for r in originals if r.status == Status.dropped]
    by_id = [r for r in dropped if "main character" in (r.reason or "")]
    return {"kept": sum(1 for r in originals if r.status == Status.kept),
            "id_drop_others": sum(1 for r in by_id if r.sha256 in others),
            "id_drop_kie": sum(1 for r in by_id if r.sha256 not in others),
            "other_drops": dict(Counter((r.reason or "").split(":")[0] for r in dropped if r not in by_id)),
            "crops": sum(1 for r in m if r.parent and r.status == Status.kept)}


# -- report --------------------------------------------------------------------------------
def report_micro(title: str, rows: list[dict]) -> None:
    base = rows[0]
    print(f"\n{title}")
    print(f"{'variant':<10} {'images/s':>9} {'x b1':>6} {'peak MB':>8} {'RSS MB':>7} {'found':>6}")
    for r in rows:
        ips, ips0 = r["n"] / r["s"], base["n"] / base["s"]
        print(f"{r['variant']:<10} {ips:>9.0f} {ips / ips0:>6.2f} {r['peak_growth_mb']:>8.1f} {r['rss_mb']:>7.0f} "
              f"{r['found']:>6}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="pictures")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (0: its default)")
    p.add_argument("--repeat", type=int, default=3, help="timed passes per micro variant (best is shown)")
    p.add_argument("--batches", default="1,8,32", help="detection batch sizes; the first is the baseline")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--child"), p.add_argument("--project")
    p.add_argument("cli", nargs="*")
    args = p.parse_args()
    if args.child:
        pin_ort_threads(args.threads)
        print(json.dumps(child_stage(args) if args.project else child_micro(args)))
        return
    from lorakiln.config.filter import FilterConfig

    id_batch = FilterConfig().identity_batch
    print(f"toy world, {args.n} pictures 64x64, CPU, onnxruntime {args.threads or 'default'} thread(s)")
    det = [spawn(f"det-b{b}", args, []) for b in map(int, args.batches.split(","))]
    report_micro("person detection (toy detector, input [batch, 3, 64, 64], dynamic batch)", det)
    ccip = [spawn(f"ccip-b{b}", args, []) for b in dict.fromkeys([1, id_batch])]
    report_micro(f"CCIP features (toy CCIP, [filter] identity_batch = {id_batch})", ccip)
    if not args.skip_e2e:
        end_to_end(args)


def end_to_end(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = make_project(Path(tmp), args.n)
        root = str(Path(tmp) / "proj")
        stages = {"import": ["import", str(src)], "filter": ["filter", "--identity"], "crop": ["crop"]}
        print(f"\nend to end: {args.n} pictures ({round(args.n * 0.8)} kie_(kiln), the rest others)")
        print(f"{'stage':<8} {'wall s':>7} {'images/s':>9} {'peak MB':>8} {'RSS MB':>7}  counts after")
        for name, cli in stages.items():
            r = spawn(name, args, ["--project", root, "--", *cli])
            c = counts(Path(root), src)
            print(f"{name:<8} {r['s']:>7.2f} {args.n / r['s']:>9.0f} {r['peak_growth_mb']:>8.1f} "
                  f"{r['rss_mb']:>7.0f}  {json.dumps(c)}")


if __name__ == "__main__":
    main()
