"""kiln import: captions as tags, kohya N_name folders, broken files, idempotent reruns."""

import os

import pytest

from lorakiln.config.importing import ImportConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.hashing import file_digests
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import Status
from lorakiln.dataset.importer import kohya_folder_of, parse_caption, parse_kohya_folder, subset_names
from lorakiln.demo.images import Spec, demo_specs, make_image
from lorakiln.services.importer import import_folder


def _save(path, spec, caption=None, ext=".txt"):
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(spec).save(path)
    if caption is not None:
        path.with_suffix(ext).write_text(caption, encoding="utf-8")
    return path


@pytest.fixture
def kohya_folder(tmp_path):
    """A kohya training folder: 10_kafka (captions), 3_kafka summer, loose files, junk."""
    src = tmp_path / "train"
    specs = demo_specs(5, seed=4)
    _save(src / "10_kafka" / "a.png", specs[0], "kafka_hsr, 1girl, solo,  long_hair,\nsmile, solo")
    _save(src / "10_kafka" / "b.png", specs[1], "\ufeffkafka_hsr, sunglasses")
    _save(src / "3_kafka summer" / "c.png", specs[2], "swimsuit, beach", ext=".caption")
    _save(src / "loose.png", specs[3])
    (src / "loose.png.txt").write_text("outdoors")  # the `image.png.txt` spelling
    (src / "notes.md").write_text("not an image")
    (src / "10_kafka" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return src


def test_pure_parsers():
    assert parse_kohya_folder("10_kafka") .repeats == 10
    assert parse_kohya_folder("3_kafka summer").name == "kafka summer"
    assert parse_kohya_folder("kafka") is None and parse_kohya_folder("5_") is None
    assert kohya_folder_of(["img", "10_kafka", "sub"]).folder == "10_kafka"
    assert parse_caption(" a, b ,, a\nc \n") == ["a", "b", "c"]
    folders = [parse_kohya_folder(n) for n in ("9_kierose", "5_kierose", "3_swim")]
    assert subset_names(folders) == {"9_kierose": "9_kierose", "5_kierose": "5_kierose", "3_swim": "swim"}


def test_import_reads_captions_folders_and_records_files(project, kohya_folder):
    before = {p: (p.stat().st_mtime_ns, file_digests(p)) for p in kohya_folder.rglob("*") if p.is_file()}
    r = import_folder(project, kohya_folder, ImportConfig(), NullProgress())
    assert (r.found, r.imported, len(r.errors), r.other_files) == (5, 5, 1, 1)
    m = project.manifest()
    by_name = {os.path.basename(x.extra["imported_from"]): x for x in m}
    a = by_name["a.png"]
    md5, sha = file_digests(kohya_folder / "10_kafka" / "a.png")
    assert a.id == f"local-{sha[:16]}" and (a.md5, a.sha256) == (md5, sha)
    assert a.tags["caption"] == ["kafka_hsr", "1girl", "solo", "long_hair", "smile"]  # caption order
    assert (a.subset, a.extra["repeats"], a.extra["kohya_folder"]) == ("kafka", 10, "10_kafka")
    assert (a.width, a.height, a.format, a.extra["bytes"]) == (
        *make_image(demo_specs(5, seed=4)[0]).size, "png", (kohya_folder / "10_kafka" / "a.png").stat().st_size)
    assert file_digests(project.abs(a.file)) == (md5, sha) and a.file.startswith("images/")
    assert by_name["b.png"].tags["caption"] == ["kafka_hsr", "sunglasses"]  # BOM stripped
    c = by_name["c.png"]
    assert (c.subset, c.extra["repeats"], c.tags["caption"]) == ("kafka summer", 3, ["swimsuit", "beach"])
    loose = by_name["loose.png"]
    assert loose.subset == "main" and "repeats" not in loose.extra and loose.tags["caption"] == ["outdoors"]
    broken = by_name["broken.png"]
    assert broken.status == Status.error and broken.file is None and broken.reason
    # the user's files are untouched
    after = {p: (p.stat().st_mtime_ns, file_digests(p)) for p in kohya_folder.rglob("*") if p.is_file()}
    assert after == before


def test_rerun_imports_nothing_twice(project, kohya_folder):
    import_folder(project, kohya_folder, ImportConfig(), NullProgress())
    manifest = project.manifest_path.read_bytes()
    files = sorted(p.name for p in project.images_dir.iterdir())
    r = import_folder(project, kohya_folder, ImportConfig(), NullProgress())
    assert (r.imported, r.already) == (0, 5)
    assert project.manifest_path.read_bytes() == manifest
    assert sorted(p.name for p in project.images_dir.iterdir()) == files
    # a copy of a known image under another name is the same image
    other = project.root.parent / "elsewhere"
    other.mkdir()
    (other / "copy.png").write_bytes((kohya_folder / "10_kafka" / "a.png").read_bytes())
    (other / "copy2.png").write_bytes((kohya_folder / "10_kafka" / "a.png").read_bytes())
    r = import_folder(project, other, ImportConfig(), NullProgress())
    assert (r.imported, r.already, r.same_content) == (0, 1, 1)
    assert len(project.manifest()) == 5


def test_force_rereads_captions_but_keeps_later_decisions(project, kohya_folder):
    import_folder(project, kohya_folder, ImportConfig(), NullProgress())
    m = project.manifest()
    a = next(x for x in m if x.extra.get("imported_from", "").endswith("a.png"))
    a.drop("monochrome: by hand")
    m.save()
    (kohya_folder / "10_kafka" / "a.txt").write_text("kafka_hsr, edited")
    assert import_folder(project, kohya_folder, ImportConfig(), NullProgress()).imported == 0
    r = import_folder(project, kohya_folder, ImportConfig(), NullProgress(), force=True)
    assert (r.refreshed, r.already) == (1, 4)  # only a.txt changed: the others are read again, the same
    a2 = project.manifest()[a.id]
    assert a2.tags["caption"] == ["kafka_hsr", "edited"] and a2.status == Status.dropped


def test_subset_option_and_same_name_with_two_repeat_counts(project, tmp_path):
    src = tmp_path / "kierose"
    _save(src / "9_kierose" / "front.png", Spec(seed=1))
    _save(src / "5_kierose" / "back.png", Spec(seed=2, view="back"))
    import_folder(project, src, ImportConfig(), NullProgress())
    got = sorted((x.subset, x.extra["repeats"]) for x in project.manifest())
    assert got == [("5_kierose", 5), ("9_kierose", 9)]  # kept apart, as the user had them
    src2 = tmp_path / "more"
    _save(src2 / "2_extra" / "x.png", Spec(seed=3))
    import_folder(project, src2, ImportConfig(), NullProgress(), subset="outfits")
    x = [r for r in project.manifest() if r.extra.get("repeats") == 2][0]
    assert x.subset == "outfits"


def test_caption_extensions_are_configurable(project, tmp_path):
    src = tmp_path / "caps"
    _save(src / "a.png", Spec(seed=1), "from caption file", ext=".caption")
    (src / "a.txt").write_text("from txt")
    import_folder(project, src, ImportConfig(caption_extensions=["caption"]), NullProgress())
    assert next(iter(project.manifest())).tags["caption"] == ["from caption file"]


def test_link_mode_and_project_folders_skipped(project):
    src = project.root / "incoming"  # a folder inside the project: its images/ must not be re-read
    _save(src / "a.png", Spec(seed=1))
    r = import_folder(project, project.root, ImportConfig(mode="link"), NullProgress())
    assert r.imported == 1
    rec = next(iter(project.manifest()))
    assert os.path.samefile(project.abs(rec.file), src / "a.png")
    assert import_folder(project, project.root, ImportConfig(), NullProgress()).found == 1


def test_not_a_folder_is_a_clear_error(project, tmp_path):
    with pytest.raises(KilnError, match="not a folder"):
        import_folder(project, tmp_path / "missing", ImportConfig(), NullProgress())


def test_cli_import(project, kohya_folder, cli):
    code, out = cli("import", str(kohya_folder), "--subset", "all", cwd=project.root)
    assert code == 0, out
    assert "4 imported, 1 imported with a problem" in out and "subset all: 4 usable" in out and "broken.png" in out
    code, out = cli("import", str(kohya_folder), cwd=project.root)
    assert code == 0 and "0 imported" in out and "5 already imported" in out


def test_kill_9_mid_import_then_rerun_completes(project, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "many"
    for i, spec in enumerate(demo_specs(30, seed=9)):
        _save(src / f"{i:02d}.png", spec, f"tag{i}")
    proc = subprocess.Popen([sys.executable, "-m", "lorakiln", "import", str(src)], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if len(list(project.images_dir.glob("local-*"))) >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    project.manifest()  # whatever was saved parses
    r = import_folder(project, src, ImportConfig(), NullProgress())
    m = project.manifest()
    assert len(m) == 30 and r.imported + r.already == 30
    assert not list(project.images_dir.glob(".*.part"))
    for rec in m:
        assert file_digests(project.abs(rec.file))[1] == rec.sha256
        assert rec.tags["caption"] == [f"tag{int(rec.extra['imported_from'][-6:-4])}"]
