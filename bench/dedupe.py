"""Benchmark: `kiln dedupe` at 10,000 images — hashing, grouping, and a naive baseline.

Generates N small varied pictures (64-256 px, random shapes; deterministic) in a temp folder,
plus ~5% near-duplicates of random originals (resized, re-saved as JPEG at lower quality,
cropped 2-3%). Then it measures:

  1. hashing: decode + 64-bit pHash per file, in 1 and in 2 threads (images/s);
  2. grouping: exact + near-duplicate grouping on those hashes (lorakiln.dataset.dedupe:
     numpy XOR/popcount over blocks of the upper triangle, union-find), wall time and
     peak traced memory (tracemalloc);
  3. the baseline, side by side: the naive all-pairs Hamming comparison in pure Python on the
     same hashes (on a subset if --baseline-n is smaller than N, then extrapolated by the
     number of pairs and labelled so), and the ratio;
  4. the whole `run_dedupe` service on a project holding the N images (manifest included);
  5. what the threshold does at this size: injected near-duplicates found, and distinct
     pairs merged, for thresholds 6-12.

    .venv/bin/python bench/dedupe.py [--n 10000] [--baseline-n 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import shutil
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil
from PIL import Image, ImageDraw

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.core.manifest import Manifest
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord
from lorakiln.dataset.decode import load_rgb
from lorakiln.dataset.dedupe import Candidate, dedupe
from lorakiln.dataset.perceptual import hash_kind, perceptual_hash
from lorakiln.services.dedupe import map_threads, run_dedupe
from lorakiln.services.project import init_project


def picture(rng: random.Random) -> Image.Image:
    w, h = rng.randint(64, 256), rng.randint(64, 256)
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(rng.randint(4, 12)):
        x, y = rng.randrange(-w // 4, w), rng.randrange(-h // 4, h)
        box = [x, y, x + rng.randrange(w // 8, w // 2), y + rng.randrange(h // 8, h // 2)]
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


def near_copy(im: Image.Image, rng: random.Random) -> tuple[Image.Image, str]:
    kind = rng.choice(["resize", "jpeg", "crop"])
    if kind == "resize":
        f = rng.uniform(0.5, 0.8)
        return im.resize((max(16, int(im.width * f)), max(16, int(im.height * f))), Image.LANCZOS), kind
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=rng.randint(30, 70))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), kind
    pct = rng.uniform(0.02, 0.03)
    dx, dy = max(1, int(im.width * pct)), max(1, int(im.height * pct))
    return im.crop((dx, dy, im.width - dx, im.height - dy)), kind


def generate(folder: Path, n: int, dup_rate: float, seed: int = 0) -> tuple[list[Path], dict[int, int]]:
    """n files; about dup_rate of them near copies. Returns paths and copy index -> original index.

    Originals are redrawn from their own seed when copied, so memory stays flat.
    """
    rng = random.Random(seed)
    n_dup = int(n * dup_rate)
    n_orig = n - n_dup
    paths, truth = [], {}
    for i in range(n_orig):
        p = folder / f"{i:05d}.png"
        picture(random.Random(seed * 1_000_003 + i)).save(p, compress_level=1)
        paths.append(p)
    for _ in range(n_dup):
        src = rng.randrange(n_orig)
        im, _ = near_copy(picture(random.Random(seed * 1_000_003 + src)), rng)
        p = folder / f"{len(paths):05d}.jpg"
        im.save(p, quality=90)
        truth[len(paths)] = src
        paths.append(p)
    return paths, truth


def hash_files(paths: list[Path], workers: int) -> tuple[list[str], float]:
    t = time.perf_counter()
    out = [res for _, res in map_threads(lambda p: perceptual_hash(load_rgb(p)), paths, workers)]
    return out, time.perf_counter() - t


def naive_pairs(hexes: list[str], threshold: int) -> tuple[int, float]:
    """The baseline: every pair, in Python."""
    ints = [int(h, 16) for h in hexes]
    t = time.perf_counter()
    found = 0
    for i in range(len(ints)):
        a = ints[i]
        for j in range(i + 1, len(ints)):
            if (a ^ ints[j]).bit_count() <= threshold:
                found += 1
    return found, time.perf_counter() - t


def quality(cands: list[Candidate], truth: dict[int, int]) -> list[str]:
    """Per threshold: injected copies grouped with their original; images dropped for another picture."""
    rows = []
    for t in (6, 8, 10, 12):
        keep_of = {int(d.drop): int(d.keep) for d in dedupe(cands, DedupeConfig(threshold=t))}
        group = lambda i: keep_of.get(i, i)  # noqa: E731 - every dropped image points at its group's keeper
        family = lambda i: truth.get(i, i)  # noqa: E731 - a copy belongs to its original's family
        found = sum(group(c) == group(o) for c, o in truth.items())
        wrong = sum(family(d) != family(k) for d, k in keep_of.items())
        rows.append(f"  threshold {t:2d}: near copies found {found}/{len(truth)} ({found / len(truth):.1%}), "
                    f"images dropped for a different picture {wrong}")
    return rows


class PeakRSS:
    """Samples this process's resident memory every 10 ms while the block runs."""

    def __enter__(self) -> "PeakRSS":
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--baseline-n", type=int, default=10_000, help="Images the naive baseline compares.")
    ap.add_argument("--dup-rate", type=float, default=0.05)
    ap.add_argument("--keep", type=Path, help="Generate into this folder and keep it.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kiln-bench-dedupe-"))
    folder = args.keep or tmp / "images"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run(args, folder, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, folder: Path, tmp: Path) -> None:
    t = time.perf_counter()
    paths, truth = generate(folder, args.n, args.dup_rate)
    print(f"generated {len(paths)} images ({len(truth)} near copies) in {time.perf_counter() - t:.1f}s\n")

    hexes, t1 = hash_files(paths, 1)
    _, t2 = hash_files(paths, 2)
    print("hashing (decode + 64-bit pHash)")
    print(f"  1 thread : {t1:6.2f}s  {len(paths) / t1:7.0f} images/s")
    print(f"  2 threads: {t2:6.2f}s  {len(paths) / t2:7.0f} images/s  ({t1 / t2:.2f}x)\n")

    sizes = [Image.open(p).size for p in paths]
    cands = [Candidate(str(i), phash=h, width=w, height=hh) for i, (h, (w, hh)) in enumerate(zip(hexes, sizes))]
    cfg = DedupeConfig()
    tracemalloc.start()
    t = time.perf_counter()
    decisions = dedupe(cands, cfg)
    tg = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    pairs = len(cands) * (len(cands) - 1) // 2
    print(f"grouping {len(cands)} hashes ({pairs / 1e6:.1f} M pairs), threshold {cfg.threshold}")
    print(f"  lorakiln (numpy blocks + union-find): {tg:7.3f}s  peak traced memory {peak / 2**20:.1f} MiB  "
          f"-> {len(decisions)} dropped")

    nb = min(args.baseline_n, len(hexes))
    found, tb = naive_pairs(hexes[:nb], cfg.threshold)
    label = "measured"
    if nb < len(hexes):
        tb *= pairs / (nb * (nb - 1) / 2)
        label = f"EXTRAPOLATED from {nb} images by pair count"
    print(f"  baseline (pure-Python all pairs)     : {tb:7.3f}s  ({label}; {found} pairs within threshold)")
    print(f"  ratio baseline / lorakiln            : {tb / tg:7.1f}x\n")

    project = init_project(tmp / "proj", "bench", ["x"])
    m = Manifest(project.manifest_path)
    for i, p in enumerate(paths):
        dest = project.images_dir / p.name
        dest.hardlink_to(p)
        m.add(ImageRecord(id=f"img-{i:05d}", source="local", file=project.rel(dest),
                          width=sizes[i][0], height=sizes[i][1]))
    m.save()
    t = time.perf_counter()
    with PeakRSS() as mem:
        rep = run_dedupe(project, DedupeConfig(), NullProgress())
    tf = time.perf_counter() - t
    t = time.perf_counter()
    again = run_dedupe(project, DedupeConfig(), NullProgress())
    tr = time.perf_counter() - t
    print("service `run_dedupe` on a project (1 thread: hash + group + manifest writes)")
    print(f"  first run: {tf:6.2f}s  {len(paths) / tf:7.0f} images/s  ({len(rep.decisions)} dropped)")
    print(f"  rerun    : {tr:6.2f}s  (hashed {again.hashed}, cached {again.cached})")
    whole = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  RSS during the first run: {mem.start / 2**20:.0f} MiB at start, peak {mem.peak / 2**20:.0f} MiB "
          f"(+{(mem.peak - mem.start) / 2**20:.0f} MiB); process peak {whole:.0f} MiB\n")

    print(f"threshold at {len(paths)} images ({hash_kind('phash', 8)}, aspect tolerance {cfg.aspect_tolerance}):")
    for row in quality(cands, truth):
        print(row)


if __name__ == "__main__":
    main()
