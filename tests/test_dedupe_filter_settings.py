"""kiln dedupe reads the filter and tag settings (to keep the copy the filters keep), so a bad
KILN_FILTER__*/KILN_TAG__* value stops it as it stops kiln filter, even with no duplicates to judge.

Seen in a trial: KILN_FILTER__MIN_SHORT_SIDE=abc made `kiln filter` stop but `kiln dedupe` ran (rc 0).
"""

from __future__ import annotations

import pytest

from lorakiln.config.dedupe import DedupeConfig
from lorakiln.core.errors import ConfigError
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.dedupe import run_dedupe


def _one_picture(project) -> None:
    im = make_image(Spec(seed=5, width=512, height=640))
    path = project.images_dir / "local-a.png"
    im.save(path)
    m = project.manifest()
    m.add(ImageRecord(id="local-a", source="local", file=project.rel(path), width=im.width, height=im.height))
    m.save()


@pytest.mark.parametrize("var, value", [
    ("KILN_FILTER__MIN_SHORT_SIDE", "abc"),
    ("KILN_FILTER__REQUIRE_TAGS", "["),
    ("KILN_TAG__THRESHOLD", "abc"),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_bad_filter_or_tag_value_stops_dedupe_without_duplicates(project, monkeypatch, var, value, dry_run):
    _one_picture(project)
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=rf"environment variable {var}"):
        run_dedupe(project, DedupeConfig(), NullProgress(), dry_run=dry_run)


def test_kiln_dedupe_and_kiln_filter_give_the_same_error(project, cli, monkeypatch):
    _one_picture(project)
    monkeypatch.setenv("KILN_FILTER__MIN_SHORT_SIDE", "abc")
    code_d, out_d = cli("dedupe", cwd=project.root)
    code_f, out_f = cli("filter", cwd=project.root)
    assert code_d == code_f == 1
    assert "KILN_FILTER__MIN_SHORT_SIDE" in out_d and "min_short_side" in out_d
    assert " ".join(out_d.split()) == " ".join(out_f.split())
