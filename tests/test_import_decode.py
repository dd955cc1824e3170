"""Awkward files through import and filter: EXIF rotation, CMYK, P, LA, 16-bit, alpha, broken files."""

import numpy as np
import pytest
from PIL import Image

from lorakiln.config.filter import FilterConfig
from lorakiln.config.importing import ImportConfig
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import Status
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.filter import run_filter
from lorakiln.services.importer import import_folder

OFF = dict(min_short_side=0, max_aspect=0, require_tags=[], exclude_tags=[])


def _colour():
    return make_image(Spec(seed=5, outfit="swimsuit", background="outdoors", width=240, height=300))


def _grey_figure_rgba():
    """A greyscale figure on a transparent background."""
    im = make_image(Spec(seed=5, width=240, height=300)).convert("L").convert("RGBA")
    a = np.asarray(im).copy()
    a[:, :60, 3] = 0  # left quarter transparent
    return Image.fromarray(a, "RGBA")


def _write_cases(src):
    src.mkdir()
    rot = _colour().resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    rot.save(src / "rotated.jpg", exif=exif.tobytes())
    _colour().convert("CMYK").save(src / "cmyk.jpg")
    p = _colour().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p.info["transparency"] = 0
    p.save(src / "palette.png", transparency=0)
    make_image(Spec(seed=5, width=240, height=300)).convert("LA").save(src / "grey-alpha.png")
    ramp = (np.linspace(0, 65535, 240 * 300).reshape(300, 240)).astype(np.uint16)
    Image.fromarray(ramp).save(src / "sixteen.png")  # mode I;16
    _grey_figure_rgba().save(src / "alpha.png")
    good = (src / "cmyk.jpg").read_bytes()
    (src / "truncated.jpg").write_bytes(good[: len(good) // 2])
    Image.new("1", (12000, 12000)).save(src / "bomb.png")  # 144 M pixels, a few kB on disk
    (src / "text.png").write_text("hello, not an image")


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    src = tmp_path_factory.mktemp("cases") / "odd"
    _write_cases(src)
    return src


@pytest.fixture
def imported(project, odd_folder):
    report = import_folder(project, odd_folder, ImportConfig(), NullProgress())
    m = project.manifest()
    return project, report, {r.extra["imported_from"].rsplit("/", 1)[1]: r for r in m}


def test_each_case_gets_a_clear_status(imported):
    project, report, recs = imported
    assert report.found == 9 and len(report.errors) == 3
    assert "truncated file" in recs["truncated.jpg"].reason
    assert recs["bomb.png"].reason.startswith("decompression bomb")
    assert recs["text.png"].reason.startswith("not an image")
    ok = [n for n, r in recs.items() if r.status == Status.kept]
    assert sorted(ok) == ["alpha.png", "cmyk.jpg", "grey-alpha.png", "palette.png", "rotated.jpg", "sixteen.png"]
    assert (recs["rotated.jpg"].width, recs["rotated.jpg"].height) == (200, 300)  # EXIF orientation applied
    assert recs["cmyk.jpg"].format == "jpeg"


def test_filter_reads_every_mode(imported):
    project, _, recs = imported
    run_filter(project, FilterConfig(**OFF), NullProgress())
    m = project.manifest()
    dropped = {n for n, r in recs.items() if m[r.id].status == Status.dropped}
    assert dropped == {"grey-alpha.png", "sixteen.png", "alpha.png"}  # the greyscale ones, whatever their mode
    assert m[recs["cmyk.jpg"].id].kept and m[recs["palette.png"].id].kept and m[recs["rotated.jpg"].id].kept


def test_transparency_background_is_configurable(imported):
    project, _, recs = imported
    rid = recs["alpha.png"].id
    run_filter(project, FilterConfig(**OFF, background=(255, 0, 0)), NullProgress())
    assert project.manifest()[rid].kept  # grey figure on red: colour
    run_filter(project, FilterConfig(**OFF), NullProgress(), force=True)
    assert project.manifest()[rid].reason.startswith("monochrome: greyscale")  # on white: greyscale
