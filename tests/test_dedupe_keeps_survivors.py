"""Dedupe keeps the member of a group that the filters will keep; filter brings back the next one.

Seen in a trial: a colour picture and its greyscale copy; dedupe kept the greyscale one, filter
dropped it as monochrome, and the colour original was gone from training with nothing said.
"""

from __future__ import annotations

from PIL import Image, ImageOps

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.config.filter import FilterConfig
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.dedupe import run_dedupe
from lorakiln.services.filter import run_filter


def _add(project, m, rid: str, im: Image.Image, score: int | None = None, **kw) -> ImageRecord:
    path = project.images_dir / f"{rid}.png"
    im.save(path)
    return m.add(ImageRecord(id=rid, source="local", file=project.rel(path), width=im.width, height=im.height,
                             score=score, **kw))


def _colour_and_grey(project, grey_first: bool = True, grey_bigger: bool = False):
    colour = make_image(Spec(seed=3, width=512, height=640))
    grey = ImageOps.grayscale(colour).convert("RGB")
    if grey_bigger:
        grey = grey.resize((768, 960), Image.LANCZOS)
    m = project.manifest()
    if grey_first:
        _add(project, m, "local-grey", grey, score=90)
        _add(project, m, "local-colour", colour, score=1)
    else:
        _add(project, m, "local-colour", colour, score=1)
        _add(project, m, "local-grey", grey, score=90)
    m.save()


def test_dedupe_keeps_the_colour_picture_over_a_bigger_better_scored_grey_copy(project):
    _colour_and_grey(project, grey_first=True, grey_bigger=True)
    report = run_dedupe(project, DedupeConfig(), NullProgress())
    m = project.manifest()
    assert m["local-colour"].kept
    assert m["local-grey"].duplicate_of == "local-colour"
    assert len(report.decisions) == 1
    run_filter(project, FilterConfig(), NullProgress())
    assert project.manifest()["local-colour"].kept  # the colour original survives the whole chain


def test_with_the_monochrome_filter_off_colour_still_wins(project):
    _colour_and_grey(project)
    run_dedupe(project, DedupeConfig(), NullProgress(), filter_cfg=FilterConfig(disable=["monochrome"]))
    assert project.manifest()["local-colour"].kept


def test_filter_brings_back_the_next_member_when_the_kept_one_is_dropped(project):
    """A group decided earlier (or by an older kiln) kept the grey copy: filter swaps it."""
    _colour_and_grey(project)
    m = project.manifest()
    m["local-colour"].drop("duplicate: phash distance 0 to local-grey", duplicate_of="local-grey")
    m.save()
    report = run_filter(project, FilterConfig(), NullProgress())
    m = project.manifest()
    assert m["local-colour"].kept
    assert m["local-grey"].duplicate_of == "local-colour"
    assert report.rekept and report.rekept[0][:2] == ("local-grey", "local-colour")
    assert report.rekept[0][2].startswith("monochrome")
    assert not report.dropped  # nothing left for the filters to drop


def test_a_group_whose_members_all_fail_is_judged_member_by_member(project):
    """Both copies too small: each is dropped as too small, so `--undo size` can bring one back."""
    im = make_image(Spec(seed=4, width=200, height=240))
    m = project.manifest()
    _add(project, m, "local-a", im, score=5)
    _add(project, m, "local-b", im.resize((100, 120)), score=50)
    m.save()
    run_dedupe(project, DedupeConfig(), NullProgress())
    assert project.manifest()["local-b"].duplicate_of == "local-a"
    report = run_filter(project, FilterConfig(min_short_side=512), NullProgress())
    m = project.manifest()
    assert m["local-a"].reason.startswith("too small") and m["local-b"].reason.startswith("too small")
    assert not report.rekept and report.lost == [("local-a", ["local-b"])]


def test_when_no_copy_passes_each_gets_its_own_reason(project):
    """The kept copy has a banned tag, the other is too small: both dropped, each for its own reason."""
    im = make_image(Spec(seed=5, width=640, height=768))
    m = project.manifest()
    _add(project, m, "local-big", im, tags={"caption": ["1girl", "solo", "comic"]})
    _add(project, m, "local-small", im.resize((320, 384)), tags={"caption": ["1girl", "solo"]})
    m.save()
    run_dedupe(project, DedupeConfig(), NullProgress())
    assert project.manifest()["local-small"].duplicate_of == "local-big"
    report = run_filter(project, FilterConfig(), NullProgress())
    m = project.manifest()
    assert m["local-big"].reason.startswith("tags: has comic")
    assert m["local-small"].reason.startswith("too small") and m["local-small"].duplicate_of is None
    assert report.lost == [("local-big", ["local-small"])]
    # `kiln filter --undo size` would now bring the small copy back on its own


def test_a_keeper_dropped_by_an_earlier_filter_run_gets_its_next_copy(project):
    """Older projects: the kept image was already dropped by a filter, its copy still says duplicate."""
    _colour_and_grey(project)
    m = project.manifest()
    m["local-colour"].drop("duplicate: phash distance 0 to local-grey", duplicate_of="local-grey")
    m["local-grey"].drop("monochrome: greyscale (0.0% coloured pixels)")
    m.save()
    report = run_filter(project, FilterConfig(), NullProgress())
    m = project.manifest()
    assert m["local-colour"].kept and report.rekept[0][:2] == ("local-grey", "local-colour")
