"""kiln dedupe: exact and near-duplicates on generated pictures, best kept, idempotent, resumable."""

import io
import re
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
from interrupts import StopAfter
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.dataset.dedupe import Candidate, UnionFind, dedupe, quality_key
from lorakiln.dataset.phash_index import hamming, hex_to_words, near_pairs, popcount
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.dedupe import run_dedupe


# -- the index ------------------------------------------------------------------------------
def _brute(hexes, threshold):
    ints = [int(h, 16) for h in hexes]
    return {(i, j, (ints[i] ^ ints[j]).bit_count()) for i in range(len(ints)) for j in range(i + 1, len(ints))
            if (ints[i] ^ ints[j]).bit_count() <= threshold}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=40), st.integers(0, 20), st.integers(1, 64))
def test_near_pairs_equals_all_pairs_comparison(values, threshold, block):
    rng = random.Random(len(values))
    # near copies of some values so that small distances occur
    values = values + [v ^ (1 << rng.randrange(64)) for v in values[:5]]
    hexes = [f"{v:016x}" for v in values]
    i, j, d = near_pairs(hex_to_words(hexes), threshold, block_elems=block * max(1, len(values)))
    assert set(zip(i.tolist(), j.tolist(), d.tolist())) == _brute(hexes, threshold)


def test_multiword_hashes_and_popcount_fallback():
    a = "f" * 64  # 256-bit hashes (hash_size 16)
    b = "0" + "f" * 63
    words = hex_to_words([a, b])
    assert words.shape == (2, 4)
    assert int(hamming(words[0], words[1])) == 4
    i, j, d = near_pairs(words, 4)
    assert (i.tolist(), j.tolist(), d.tolist()) == ([0], [1], [4])
    x = np.array([0, 1, 2**64 - 1, 0xF0F0], dtype=np.uint64)
    bytes_pop = np.array([bin(int(v)).count("1") for v in x])
    assert popcount(x).tolist() == bytes_pop.tolist()


def test_aspect_gate_keeps_different_shapes_apart():
    words = hex_to_words(["00000000000000ff", "00000000000000fe", "00000000000000fc"])
    aspects = np.array([0.75, 0.8, 2.0])
    i, j, _ = near_pairs(words, 4, aspects, 0.2)
    assert list(zip(i.tolist(), j.tolist())) == [(0, 1)]


def test_union_find_groups_chains():
    uf = UnionFind(6)
    for a, b in [(0, 1), (1, 2), (4, 5)]:
        uf.union(a, b)
    assert sorted(map(sorted, uf.groups())) == [[0, 1, 2], [4, 5]]


def test_core_keeps_best_by_resolution_then_score_and_explains():
    cfg = DedupeConfig()
    items = [
        Candidate("a", md5="m1", phash="00000000000000ff", width=500, height=500, score=90),
        Candidate("b", phash="00000000000000fe", width=1000, height=1000, score=1),
        Candidate("c", md5="m1", width=500, height=500),
        Candidate("d", phash="ffffffffffff0000", width=1000, height=1000, score=3),
        Candidate("e", phash="ffffffffffff0001", width=1000, height=1000, score=7),
    ]
    got = {d.drop: d for d in dedupe(items, cfg)}
    assert set(got) == {"a", "c", "d"}
    assert got["a"].keep == "b" and got["a"].distance == 1 and got["a"].reason == "duplicate: phash distance 1 to b"
    assert got["c"].keep == "b" and got["c"].kind == "near"  # joined through a's exact copy
    assert got["d"].keep == "e"  # same size: the better score wins
    assert quality_key(items[1], 1) > quality_key(items[0], 0)
    exact_only = dedupe(items, DedupeConfig(near=False))
    assert [(d.drop, d.keep, d.kind) for d in exact_only] == [("c", "a", "exact")]
    assert exact_only[0].reason == "duplicate: same file as a (md5)"


# -- on generated pictures ------------------------------------------------------------------
def scene(seed: int, w: int = 320, h: int = 400) -> Image.Image:
    """A distinct picture: 14 random shapes (pHash distance >= 16 between seeds 0-199)."""
    rng = random.Random(seed)
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(14):
        x, y = rng.randrange(-w // 4, w), rng.randrange(-h // 4, h)
        box = [x, y, x + rng.randrange(w // 8, w // 2), y + rng.randrange(h // 8, h // 2)]
        (d.ellipse if rng.random() < 0.5 else d.rectangle)(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(im: Image.Image, pct: float) -> Image.Image:
    dx, dy = int(im.width * pct / 100), int(im.height * pct / 100)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


def _add(project, rid: str, im: Image.Image, fmt: str = "PNG", score: int | None = None, **kw) -> ImageRecord:
    path = project.images_dir / f"{rid}.{fmt.lower()}"
    im.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    rec = ImageRecord(id=rid, source="local", file=project.rel(path), width=im.width, height=im.height,
                      score=score, **kw)
    return rec


@pytest.fixture
def dup_project(project):
    """Three originals, each with near copies (resize, JPEG q40, 2-3% crops), plus 12 distinct scenes."""
    m = project.manifest()
    truth = {}
    originals = {"demo": make_image(Spec(seed=7)), "sceneA": scene(1000, 480, 600), "sceneB": scene(1001, 640, 480)}
    for name, im in originals.items():
        m.add(_add(project, f"{name}-orig", im, score=5))
        copies = {
            "half": im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
            "q40": _jpeg(im, 40),
            "crop2": _crop(im, 2),
            "crop3": _crop(im, 3),
        }
        for kind, c in copies.items():
            score = 50 if kind == "half" else 1  # resolution wins over score; same size: score decides
            m.add(_add(project, f"{name}-{kind}", c, "JPEG" if kind == "q40" else "PNG", score=score))
            truth[f"{name}-{kind}"] = f"{name}-orig"
    for s in range(12):
        m.add(_add(project, f"distinct-{s}", scene(s)))
    m.save()
    return project, truth


def test_finds_every_near_duplicate_and_merges_no_distinct_pair(dup_project):
    project, truth = dup_project
    report = run_dedupe(project, DedupeConfig(), NullProgress())
    m = project.manifest()
    dropped = {r.id: r for r in m if r.status == Status.dropped}
    assert {rid: r.duplicate_of for rid, r in dropped.items()} == truth  # largest (the original) kept
    assert all(r.reason.startswith("duplicate: phash distance ") for r in dropped.values())
    assert all(m[f"distinct-{s}"].kept for s in range(12))
    assert report.hashed == len(m) and report.cached == 0
    assert len(report.groups) == 3 and all(len(g.dropped) == 4 for g in report.groups)


def test_same_resolution_keeps_higher_score_and_exact_copies(project):
    m = project.manifest()
    im = scene(5)
    a = m.add(_add(project, "danbooru-1", im, score=3, md5="x" * 32))
    b = m.add(_add(project, "gelbooru-9", im, score=9, md5="x" * 32))  # same file from another site
    c = m.add(_add(project, "danbooru-2", _jpeg(im, 60), "JPEG", score=40))
    m.save()
    run_dedupe(project, DedupeConfig(), NullProgress())
    m = project.manifest()
    assert m[c.id].kept
    assert m[a.id].duplicate_of == c.id and m[b.id].duplicate_of == c.id
    assert m[a.id].extra["duplicate"]["kind"] == "near"
    run_dedupe(project, DedupeConfig(near=False), NullProgress(), force=True)
    m = project.manifest()
    assert m[b.id].kept and m[a.id].duplicate_of == b.id  # exact only: same md5, better score
    assert m[a.id].reason == "duplicate: same file as gelbooru-9 (md5)" and m[c.id].kept


def test_rerun_is_idempotent_and_hashes_only_new_images(dup_project):
    project, truth = dup_project
    run_dedupe(project, DedupeConfig(), NullProgress())
    before = project.manifest_path.read_bytes()
    again = run_dedupe(project, DedupeConfig(), NullProgress())
    assert again.hashed == 0 and again.decisions == []
    assert project.manifest_path.read_bytes() == before
    m = project.manifest()
    m.add(_add(project, "late-copy", _jpeg(scene(3), 50), "JPEG"))
    m.save()
    third = run_dedupe(project, DedupeConfig(), NullProgress())
    assert third.hashed == 1 and [(d.drop, d.keep) for d in third.decisions] == [("late-copy", "distinct-3")]
    forced = run_dedupe(project, DedupeConfig(), NullProgress(), force=True)
    assert forced.restored == len(truth) + 1 and forced.hashed == len(project.manifest())
    assert project.manifest_path.read_bytes() != before  # the late copy is in it
    assert sum(r.status == Status.dropped for r in project.manifest()) == len(truth) + 1


def test_new_hash_kind_rehashes(dup_project):
    project, _ = dup_project
    run_dedupe(project, DedupeConfig(), NullProgress())
    r = run_dedupe(project, DedupeConfig(hash="dhash", threshold=12), NullProgress(), dry_run=True)
    assert r.hashed == r.considered  # kept images rehashed with dhash
    assert all(x.extra["phash_kind"] == "dhash-8" for x in project.manifest() if x.kept)


def test_orphaned_duplicates_come_back(dup_project):
    project, truth = dup_project
    run_dedupe(project, DedupeConfig(), NullProgress())
    m = project.manifest()
    m["sceneA-orig"].drop("monochrome: pretend")  # the kept image went away in a later stage
    m.save()
    r = run_dedupe(project, DedupeConfig(), NullProgress())
    assert r.restored == 4
    m = project.manifest()
    kept_a = [x.id for x in m if x.id.startswith("sceneA") and x.kept]
    assert kept_a == ["sceneA-q40"]  # the JPEG copy has the original's full size
    assert m["sceneA-half"].duplicate_of == "sceneA-q40"


def test_broken_file_is_an_error_and_the_batch_goes_on(dup_project):
    project, truth = dup_project
    path = project.abs(project.manifest()["distinct-0"].file)
    path.write_bytes(path.read_bytes()[:200])
    r = run_dedupe(project, DedupeConfig(), NullProgress())
    m = project.manifest()
    assert m["distinct-0"].status == Status.error and "truncated" in m["distinct-0"].reason
    assert r.errors == [("distinct-0", m["distinct-0"].reason)]
    assert {x.id for x in m if x.status == Status.dropped} == set(truth)


def test_interrupted_run_keeps_its_work_and_resumes(dup_project):
    project, truth = dup_project
    with pytest.raises(KeyboardInterrupt):
        run_dedupe(project, DedupeConfig(workers=1), StopAfter(5))
    m = project.manifest()
    assert sum(1 for r in m if r.phash) == 5 and all(r.kept for r in m)
    r = run_dedupe(project, DedupeConfig(), NullProgress())
    assert r.cached == 5 and r.hashed == len(m) - 5
    assert {x.id for x in project.manifest() if x.status == Status.dropped} == set(truth)


def test_cli_show_and_threshold(dup_project, cli):
    project, truth = dup_project
    code, out = cli("dedupe", "--show", "--dry-run", "--threshold", "0", cwd=project.root)
    assert code == 0, out
    n = int(re.search(r"would drop 0 exact and (\d+) near duplicates\s+\(phash distance <= 0\)", out).group(1))
    assert 3 <= n < len(truth)  # at least the lossless resizes; never the crops of the originals
    assert all(r.kept for r in project.manifest())
    code, out = cli("dedupe", "--show", cwd=project.root)
    assert code == 0, out
    assert re.search(r"dropped 0 exact and 12 near duplicates\s+\(phash distance <= 8\)", out)
    assert out.count("group ") == 3 and "sceneA-orig" in out and "480x600" in out and "near" in out
    code, out = cli("dedupe", "--show", cwd=project.root)
    assert "hashed 0" in out and out.count("group ") == 3
    shutil.rmtree(project.images_dir)  # --show after the fact reads the manifest only


def test_dry_run_while_another_command_writes_saves_nothing(dup_project, cli):
    """A dry run caches its hashes only when it may write; with the project busy it still runs."""
    from lorakiln.core import lock

    project, _ = dup_project
    before = project.manifest_path.read_bytes()
    report = run_dedupe(project, DedupeConfig(), NullProgress(), dry_run=True, save_hashes=False)
    assert report.decisions and report.hashed
    assert project.manifest_path.read_bytes() == before
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(project.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out = cli("dedupe", "--dry-run", cwd=project.root)
        assert code == 0 and "would drop" in out, out
        assert project.manifest_path.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    assert not lock.holds(project.root)


HOLD = "import sys; from lorakiln.core import lock; lock.acquire(sys.argv[1], 'kiln tag'); print('held', flush=True); sys.stdin.readline()"
