"""kiln filter: each rule on pictures built to trip it and not, the fixed order, --undo, reruns."""

import io
import random

import numpy as np
import pytest
from interrupts import StopAfter
from PIL import Image, ImageDraw, ImageOps

from lorakiln.config.filter import FilterConfig
from lorakiln.core.errors import ConfigError
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord, Status, TaggerScores
from lorakiln.dataset.filters import FILTER_ORDER, FILTERS, build_filters, matches_undo
from lorakiln.dataset.filters.monochrome import colour_stats
from lorakiln.demo.images import Spec, make_image
from lorakiln.services import filter as svc

OFF = dict(min_short_side=0, max_aspect=0, require_tags=[], exclude_tags=[])  # all but the rule tested


def _add(project, rid, im=None, fmt="PNG", save_kw=None, **kw):
    rec = ImageRecord(id=rid, source="local", **kw)
    if im is not None:
        path = project.images_dir / f"{rid}.{fmt.lower()}"
        im.save(path, fmt, **(save_kw or {}))
        rec.file = project.rel(path)
    m = project.manifest()
    m.add(rec)
    m.save()
    return rec


def _run(project, force=False, **cfg):
    return svc.run_filter(project, FilterConfig(**cfg), NullProgress(), force=force)


def _reasons(project):
    return {r.id: r.reason for r in project.manifest() if r.status == Status.dropped}


def _sepia(im):
    return ImageOps.colorize(im.convert("L"), (40, 20, 0), (255, 240, 200))


def _jpeg(im, q=70):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _small_on_white(im, scale=0.2):
    canvas = Image.new("RGB", im.size, (255, 255, 255))
    canvas.paste(im.resize((int(im.width * scale), int(im.height * scale))), (8, 8))
    return canvas


def _flat_scene(seed):
    rng = random.Random(seed)
    im = Image.new("RGB", (200, 200), tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.randrange(200), rng.randrange(200)
        d.rectangle([x, y, x + 60, y + 60], fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


DEMO = Spec(seed=11, outfit="dress", background="outdoors", width=256, height=320)
MONO_CASES = {
    # id: (image, dropped?)
    "colour": (make_image(DEMO), False),
    "colour-jpeg": (_jpeg(make_image(DEMO)), False),
    "colour-white-bg": (make_image(Spec(seed=3, background="white_background", width=256, height=320)), False),
    "small-figure-on-white": (_small_on_white(make_image(DEMO)), False),
    "flat-colour-scene": (_flat_scene(1), False),
    "greyscale": (make_image(Spec(seed=11, mono=True, width=256, height=320)), True),
    "greyscale-jpeg": (_jpeg(make_image(DEMO).convert("L").convert("RGB"), 60), True),
    "sepia": (_sepia(make_image(DEMO)), True),
    "sepia-jpeg": (_jpeg(_sepia(make_image(DEMO)), 60), True),
    "blue-tone": (ImageOps.colorize(make_image(DEMO).convert("L"), (10, 10, 60), (220, 230, 255)), True),
}


def test_monochrome_statistics_separate_colour_from_grey_and_tints(project):
    for rid, (im, _) in MONO_CASES.items():
        _add(project, rid, im)
    _run(project, **OFF)
    reasons = _reasons(project)
    assert {rid for rid, (_, mono) in MONO_CASES.items() if mono} == set(reasons)
    assert reasons["greyscale"].startswith("monochrome: greyscale (")
    assert reasons["sepia"].startswith("monochrome: single hue (")


def test_colour_stats_pure():
    grey = np.full((32, 32, 3), 120, np.uint8)
    assert colour_stats(grey).colour == 0.0
    blank = np.full((32, 32, 3), 255, np.uint8)  # only paper: nothing drawn, nothing coloured
    assert colour_stats(blank).colour == 0.0
    two = np.zeros((32, 32, 3), np.uint8)
    two[:, :16] = (200, 30, 30)
    two[:, 16:] = (0, 138, 0)
    s = colour_stats(two)
    assert s.colour == 1.0 and s.off_ramp > 0.4  # red and green at the same brightness


def _gif(frames):
    buf = io.BytesIO()
    ims = [Image.new("RGB", (64, 64), (i * 80, 40, 200 - i * 60)) for i in range(frames)]
    ims[0].save(buf, "GIF", save_all=True, append_images=ims[1:], duration=100)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_animated_and_video(project):
    _add(project, "anim", _gif(3), "GIF", save_kw={"save_all": True})
    _add(project, "still", _gif(1), "GIF")
    frames = [make_image(Spec(seed=i, width=64, height=64)) for i in range(2)]
    _add(project, "apng", frames[0], "PNG", save_kw={"save_all": True, "append_images": frames[1:]})
    _add(project, "clip", format="mp4", width=1280, height=720)  # fetched metadata, no file
    _run(project, **OFF, disable=["monochrome"])
    assert _reasons(project) == {"anim": "animated: gif with 3 frames", "apng": "animated: png with 2 frames",
                                 "clip": "animated: video (mp4)"}


def test_size_and_aspect(project):
    blank = Image.new("RGB", (8, 8), "white")
    _add(project, "small", blank.resize((400, 300)))
    _add(project, "ok", blank.resize((512, 700)))
    _add(project, "wide", blank.resize((2100, 520)))
    _add(project, "tall-ok", blank.resize((520, 2000)))
    _add(project, "meta-only", width=300, height=200)  # no file yet: judged on the recorded size
    _run(project, min_short_side=512, max_aspect=4, disable=["monochrome", "tags"])
    assert _reasons(project) == {"small": "too small: 400x300 < 512", "wide": "aspect: 2100x520 is 4.04:1 > 4:1",
                                 "meta-only": "too small: 300x200 < 512"}
    svc.undo(project, "too")
    _run(project, min_short_side=0, min_pixels=600 * 600, max_aspect=0, disable=["monochrome", "tags"], force=True)
    assert set(_reasons(project)) == {"small", "ok", "meta-only"}
    assert _reasons(project)["ok"] == "too small: 512x700 = 358400 px < 360000"


def test_tag_rules(project):
    tags = {
        "solo": {"general": ["1girl", "solo"]},
        "no-solo": {"general": ["2girls"]},
        "comic": {"general": ["solo"], "meta": ["comic"]},
        "bubble-spaces": {"caption": ["Solo", "speech bubble"]},  # imported captions, A1111 spelling
        "untagged": {},
    }
    for rid, t in tags.items():
        _add(project, rid, tags=t)
    _add(project, "tagger", tagger=TaggerScores(model="wd", general={"solo": 0.9, "multiple_views": 0.8}))
    _add(project, "tagger-weak", tagger=TaggerScores(model="wd", general={"solo": 0.9, "multiple_views": 0.1}))
    r = _run(project, disable=["monochrome"], min_short_side=0)
    assert _reasons(project) == {"no-solo": "tags: missing solo", "comic": "tags: has comic",
                                 "bubble-spaces": "tags: has speech_bubble", "tagger": "tags: has multiple_views"}
    assert r.untagged == 1


def test_cap_keeps_best_by_score_per_subset(project):
    for i, score in enumerate([1, 50, 30, None, 7]):
        _add(project, f"a{i}", subset="a", score=score, width=600, height=600)
    _add(project, "b0", subset="b", score=0, width=600, height=600)
    _run(project, **OFF, max_per_subset=2)
    reasons = _reasons(project)
    assert set(reasons) == {"a0", "a3", "a4"}
    assert reasons["a4"] == "cap: subset a keeps its best 2 (score 7)"


def test_fixed_order_first_failing_filter_gives_the_reason(project):
    _add(project, "tiny-grey-comic", make_image(Spec(seed=1, mono=True, width=200, height=260)),
         tags={"general": ["comic"]})
    _run(project)
    assert _reasons(project) == {"tiny-grey-comic": "too small: 200x260 < 512"}
    assert [f.name for f in build_filters(FilterConfig(max_per_subset=3, identity=True))] == FILTER_ORDER
    assert sorted(FILTER_ORDER) == FILTERS.names()


def test_undo_restores_remembers_and_force_forgets(project):
    _add(project, "grey", make_image(Spec(seed=1, mono=True, width=256, height=320)))
    _add(project, "sepia", _sepia(make_image(DEMO)))
    _add(project, "colour", make_image(DEMO))
    _add(project, "small", width=100, height=100)
    _add(project, "dup", width=600, height=600)
    m = project.manifest()
    m["dup"].drop("duplicate: phash distance 2 to colour", duplicate_of="colour")
    m.save()
    cfg = dict(require_tags=[], min_short_side=128)
    _run(project, **cfg)
    assert set(_reasons(project)) == {"grey", "sepia", "small", "dup"}
    assert svc.undo(project, "dup") == []  # dedupe's drops are not the filter's to undo
    back = svc.undo(project, "MONO")
    assert sorted(r.id for r in back) == ["grey", "sepia"]
    progress = NullProgress()
    svc.run_filter(project, FilterConfig(**cfg), progress)
    assert set(_reasons(project)) == {"small", "dup"}  # the user's choice holds on a plain rerun
    assert "colour statistics" not in progress.tasks  # cached from the first run: no decoding
    r = _run(project, **cfg, force=True)
    assert r.restored == 1 and set(_reasons(project)) == {"grey", "sepia", "small", "dup"}
    assert matches_undo("too small: 1x1 < 2", "too") and matches_undo("too small: 1x1 < 2", "size")
    assert not matches_undo("duplicate: x", "d")


def test_broken_file_is_recorded_and_the_batch_goes_on(project):
    _add(project, "ok", make_image(DEMO))
    rec = _add(project, "cut", make_image(DEMO))
    path = project.abs(rec.file)
    path.write_bytes(path.read_bytes()[:300])
    r = _run(project, **OFF)
    m = project.manifest()
    assert m["cut"].status == Status.error and m["ok"].kept
    assert [rid for rid, _ in r.errors] == ["cut"]


def test_unknown_filter_in_disable_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown filter"):
        build_filters(FilterConfig(disable=["monochrom"]))


def test_cli_filter_list_and_undo(project, cli):
    _add(project, "grey", make_image(Spec(seed=1, mono=True, width=600, height=700)), tags={"general": ["solo"]})
    _add(project, "colour", make_image(Spec(seed=2, width=600, height=700)), tags={"general": ["solo"]})
    code, out = cli("filter", cwd=project.root)
    assert code == 0, out
    assert "dropped 1" in out and "monochrome: 1" in out
    code, out = cli("filter", "--list", cwd=project.root)
    assert code == 0 and "too small" in out and "off" in out  # the cap is off by default
    code, out = cli("filter", "--undo", "aspect", cwd=project.root)
    assert "nothing dropped by a filter matching 'aspect'" in out and "monochrome (1)" in out
    code, out = cli("filter", "--undo", "mono", cwd=project.root)
    assert "restored 1" in out and project.manifest()["grey"].kept


def test_interrupted_filter_resumes_to_the_same_result(project):
    cases = {**{k: v for k, (v, _) in MONO_CASES.items()}, "small": make_image(Spec(seed=4, width=96, height=96))}
    for rid, im in cases.items():
        _add(project, rid, im)
    cfg = dict(min_short_side=128, max_aspect=0, require_tags=[], exclude_tags=[], workers=1)
    with pytest.raises(KeyboardInterrupt):
        svc.run_filter(project, FilterConfig(**cfg), StopAfter(4, when="colour statistics"))
    m = project.manifest()  # what was done before Ctrl-C was saved
    assert sum(1 for r in m if "colour_stats" in r.extra) == 4
    assert m["small"].reason == "too small: 96x96 < 128" and all(r.status != Status.error for r in m)
    progress = NullProgress()
    svc.run_filter(project, FilterConfig(**cfg), progress)
    assert progress.tasks["colour statistics"].done == len(MONO_CASES) - 4  # only what was left
    want = {rid for rid, (_, dropped) in MONO_CASES.items() if dropped} | {"small"}
    assert set(_reasons(project)) == want
    r = _run(project, force=True, **cfg)  # a clean judgement of everything agrees
    assert set(_reasons(project)) == want and r.restored == len(want)
