"""kiln import of a hostile folder: odd names, links, pipes and caption files in any encoding.

One bad entry never stops the import; every image gets a record or a reported reason; nothing
is copied into images/ without a record; a rerun works; no NUL or mojibake reaches a caption.
"""

import json
import os

import pytest

from lorakiln.config.importing import ImportConfig
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import Status
from lorakiln.services.importer import import_folder

from bad_files import image, odd_names, pipe_guard  # noqa: F401  (pipe_guard is a fixture)


def _run(project, folder, **kw):
    return import_folder(project, folder, ImportConfig(workers=1), NullProgress(), **kw)


def _files_have_records(project):
    on_disk = {p.name for p in project.images_dir.iterdir()}
    recorded = {os.path.basename(r.file) for r in project.manifest() if r.file}
    assert on_disk == recorded


def test_odd_names_are_recorded_or_reported_and_a_rerun_works(project, tmp_path):
    made = odd_names(tmp_path / "src")
    r = _run(project, tmp_path / "src")
    assert (r.imported, {os.path.basename(p) for p, _ in r.errors}) == (made["good"], made["errors"])
    why = {os.path.basename(p): w for p, w in r.errors}
    assert "loop" in why["loop.png"] and "missing" in why["broken.png"]
    recs = list(project.manifest())
    origins = sorted(os.path.basename(x.extra["imported_from"]) for x in recs)
    assert origins == ["\\xff\\xfe-bad.png", "good.png", "inner.png"]  # the bytes made visible
    by_origin = {os.path.basename(x.extra["imported_from"]): x for x in recs}
    assert by_origin["\\xff\\xfe-bad.png"].tags["caption"] == ["kafka", "odd_name"]
    assert by_origin["inner.png"].subset == "\\xff\\xfe-bad" and by_origin["inner.png"].extra["repeats"] == 3
    json.dumps([x.model_dump() for x in recs], ensure_ascii=False).encode("utf-8")  # no lone surrogates
    _files_have_records(project)
    manifest = project.manifest_path.read_bytes()
    again = _run(project, tmp_path / "src")
    assert (again.imported, again.already, len(again.errors)) == (0, 3, 2)
    assert project.manifest_path.read_bytes() == manifest


def test_pipes_are_never_opened(project, tmp_path, pipe_guard):
    src = tmp_path / "src"
    src.mkdir()
    image(src / "a.png", 1)
    pipe_guard(src / "a.txt")  # a pipe as the caption
    pipe_guard(src / "pipe.png")  # and as an image: hashing it blocked forever
    r = _run(project, src)
    why = {os.path.basename(p): w for p, w in r.errors}
    assert "not a regular file" in why["pipe.png"] and "a.txt" in why["a.png"]
    assert [x.status for x in project.manifest()] == [Status.error]  # a.png: its caption is unusable


def test_captions_in_other_encodings_become_clean_tags(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    tags = "kafka, 初音ミク, long_hair"
    cases = {"utf16": "utf-16", "sjis": "shift_jis", "utf16be": "utf-16-be", "latin": "cp1252"}
    for i, (stem, codec) in enumerate(cases.items()):
        text = "kafka, café, naïve" if codec == "cp1252" else tags
        image(src / f"{stem}.png", i, text.encode(codec))
    image(src / "ctrl.png", 9, b"kafka,\x1b[1m bold\x07, smile\x7f")
    r = _run(project, src)
    assert r.errors == [] and r.imported == 5
    got = {os.path.basename(x.extra["imported_from"]): x for x in project.manifest()}
    for stem in ("utf16", "sjis", "utf16be"):
        assert got[f"{stem}.png"].tags["caption"] == ["kafka", "初音ミク", "long_hair"]
    assert got["latin.png"].tags["caption"] == ["kafka", "café", "naïve"]
    assert got["sjis.png"].extra["caption_encoding"] == "cp932"
    assert got["ctrl.png"].tags["caption"] == ["kafka", "[1m bold", "smile"]
    assert {os.path.basename(p) for p, _ in r.notes} == {"utf16.png", "sjis.png", "utf16be.png", "latin.png",
                                                         "ctrl.png"}
    for rec in got.values():
        assert not any(c in t for t in rec.tags["caption"] for c in "\x00\ufffd\x1b")


def test_bad_caption_files_mark_the_image_until_fixed(project, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image(src / "dir.png", 1)
    (src / "dir.txt").mkdir()
    image(src / "binary.png", 2, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    image(src / "huge.png", 3, b"a, " * 400_000)
    image(src / "fine.png", 4, b"kafka")
    r = _run(project, src)
    why = {os.path.basename(p): w for p, w in r.errors}
    assert set(why) == {"dir.png", "binary.png", "huge.png"}
    assert "dir.txt" in why["dir.png"] and "folder" in why["dir.png"]
    assert "NUL" in why["binary.png"] and "more than" in why["huge.png"]
    recs = {os.path.basename(x.extra["imported_from"]): x for x in project.manifest()}
    assert recs["dir.png"].status == Status.error and recs["dir.png"].reason.startswith("caption file not read")
    _files_have_records(project)  # the image itself is fine: copied, and recorded
    (src / "binary.txt").write_text("kafka, fixed", encoding="utf-8")
    again = _run(project, src)  # no --force needed: a caption problem is read again
    recs = {os.path.basename(x.extra["imported_from"]): x for x in project.manifest()}
    assert recs["binary.png"].status == Status.kept and recs["binary.png"].tags["caption"] == ["kafka", "fixed"]
    assert "caption_problem" not in recs["binary.png"].extra
    assert (again.refreshed, again.already, again.already_bad) == (1, 3, 2)  # the fixed one, no news of the rest
    assert again.errors == [] and recs["fine.png"].status == Status.kept


def test_cli_import_of_odd_names_prints_them(project, tmp_path, cli):
    odd_names(tmp_path / "src")
    (tmp_path / "src" / "[bold]gone.png").symlink_to("nowhere.png")  # rich markup in a name
    code, output = cli("import", str(tmp_path / "src"), cwd=project.root)
    assert code == 0, output
    assert "loop.png" in output and "3 imported" in output and "\\xff\\xfe-bad" in output
    assert "[bold]gone.png: missing" in output


def test_unreadable_files_and_folders_are_reported(project, tmp_path):
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    if os.access(probe, os.R_OK):
        pytest.skip("this user reads files whatever their permissions (root)")
    src = tmp_path / "src"
    (src / "locked").mkdir(parents=True)
    image(src / "ok.png", 1)
    image(src / "secret.png", 2)
    image(src / "cap.png", 3, b"kafka")
    image(src / "locked" / "x.png", 4)
    locked = [src / "secret.png", src / "cap.txt", src / "locked"]
    for p in locked:
        p.chmod(0)
    try:
        r = _run(project, src)
    finally:
        for p in locked:
            p.chmod(0o755)
    why = {os.path.basename(p): w for p, w in r.errors}
    assert set(why) == {"secret.png", "cap.png", "locked"} and r.imported == 2  # ok.png, and cap.png marked
    assert all("permission denied" in w for w in why.values()) and "cap.txt" in why["cap.png"]
    _files_have_records(project)
