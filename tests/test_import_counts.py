"""kiln import counts every image it finds exactly once, and a rerun with nothing changed is quiet.

Outcomes: imported, imported with a problem, refreshed, already imported, same content twice,
not importable. Their counts sum to "found", on a first run, a rerun and after a fix.
"""

import os
import re
import shutil

from lorakiln.config.importing import ImportConfig
from lorakiln.core.progress import NullProgress
from lorakiln.services.importer import import_folder

from bad_files import image, odd_names


def _run(project, folder, **kw):
    return import_folder(project, folder, ImportConfig(workers=1), NullProgress(), **kw)


def _hostile(src):
    """odd names, a folder as a caption, an empty picture, a binary caption, a copy, a sane pair."""
    odd_names(src)
    image(src / "ok.png", 11, b"kafka, smile")
    image(src / "capdir.png", 12)
    (src / "capdir.txt").mkdir()
    (src / "zero.png").write_bytes(b"")
    image(src / "binary.png", 13, b"\x89PNG\r\n\x1a\n\x00\x00")
    shutil.copy(src / "ok.png", src / "ok-copy.png")


def _sums(r):
    assert sum(n for _, n in r.outcomes()) == r.found, r.outcomes()


def test_every_image_is_counted_once(project, tmp_path):
    src = tmp_path / "src"
    _hostile(src)
    r = _run(project, src)
    _sums(r)
    assert r.found == 10  # good, bad-name, inner, loop, broken, ok, capdir, zero, binary, ok-copy
    assert dict(r.outcomes()) == {
        "imported": 4, "imported with a problem (recorded, not trained on)": 3, "refreshed": 0,
        "already imported": 0, "same content twice": 1, "not importable": 2}
    assert sum(r.subsets.values()) == 4  # only the usable ones
    assert {os.path.basename(p) for p, _ in r.errors} == {"loop.png", "broken.png", "capdir.png", "zero.png",
                                                          "binary.png"}


def test_a_rerun_with_nothing_changed_refreshes_nothing(project, tmp_path):
    src = tmp_path / "src"
    _hostile(src)
    _run(project, src)
    manifest = project.manifest_path.read_bytes()
    for _ in range(2):
        r = _run(project, src)
        _sums(r)
        assert (r.imported, r.refreshed, r.already, r.already_bad, r.unreadable) == (0, 0, 8, 3, 2)
        assert {os.path.basename(p) for p, _ in r.errors} == {"loop.png", "broken.png"}  # nothing recorded
        assert project.manifest_path.read_bytes() == manifest
    r = _run(project, src, force=True)
    _sums(r)
    assert (r.refreshed, r.already, r.same_content) == (0, 7, 1)  # --force rereads: nothing changed
    (src / "binary.txt").write_text("kafka, fixed")  # a fixed caption is picked up: that is a refresh
    r = _run(project, src)
    _sums(r)
    assert (r.refreshed, r.already, r.already_bad) == (1, 7, 2) and not r.subsets.keys() - {"main"}


def test_cli_line_adds_up(project, tmp_path, cli):
    src = tmp_path / "src"
    _hostile(src)
    for _ in range(2):
        code, out = cli("import", src, cwd=project.root)
        assert code == 0, out
        line = " ".join(out.split())
        head = re.search(r"found (\d+) images: ([^;]*)", line)
        counts = [int(n) for n in re.findall(r"(?:^|, )(\d+) ", head.group(2))]
        assert sum(counts) == int(head.group(1)), line
    assert "refreshed" not in head.group(2) and "8 already imported (3 of them with a problem)" in line
