"""kiln export: the kohya training view, idempotent and atomic, and the round trip through kiln import."""

import os

import pytest
from test_caption_data import add_images, kafka_records, zeta_records

from lorakiln.captions.export import repeats_table
from lorakiln.core.hashing import file_digests
from lorakiln.services import caption as svc
from lorakiln.services.export import export_dataset
from lorakiln.services.project import init_project, open_project


def files(root):
    """The training files (dataset/.kiln-export.json, export's own record, is tested in test_export_record.py)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != ".kiln-export.json")


def test_layout_captions_and_links(project):
    add_images(project, kafka_records(3) + zeta_records()[3:5])
    project.set_section("export", {"repeats": {"main": 10, "summer": 3}})
    svc.trigger(svc.Captions(open_project(project.root)))
    res = export_dataset(open_project(project.root))
    ds = project.dataset_dir
    assert res.folders == {"10_main": 3, "3_summer": 2} and res.linked == 5 and res.captions_written == 5
    assert "10_main/danbooru-100.png" in files(ds) and "3_summer/gelbooru-summer-0.txt" in files(ds)
    text = (ds / "10_main" / "danbooru-100.txt").read_text()
    assert text.startswith(r"kafka_hsr, kafka \(honkai: star rail\), honkai: star rail, artist 0, 1girl, solo, purple hair")
    assert os.path.samefile(ds / "10_main" / "danbooru-100.png", project.images_dir / "danbooru-100.png")


def test_rerun_rewrites_only_what_changed_and_removes_stale(project):
    add_images(project, kafka_records(4))
    p = open_project(project.root)
    export_dataset(p)
    ds = project.dataset_dir
    original = file_digests(project.images_dir / "danbooru-101.png")
    mtimes = {f: (ds / f).stat().st_mtime_ns for f in files(ds)}
    again = export_dataset(open_project(project.root))
    assert (again.linked, again.copied, again.captions_written, again.removed, again.unchanged) == (0, 0, 0, 0, 4)
    assert {f: (ds / f).stat().st_mtime_ns for f in files(ds)} == mtimes

    svc.replace(svc.Captions(open_project(project.root)), "smile", "grin", svc.selection(ids=["danbooru-101"]))
    m = project.manifest()
    m["danbooru-103"].drop("filter: too small")
    m.save()
    res = export_dataset(open_project(project.root))
    assert res.captions_written == 1 and res.removed == 2 and res.linked == 0
    assert "grin" in (ds / "1_main" / "danbooru-101.txt").read_text()
    assert not (ds / "1_main" / "danbooru-103.png").exists()
    assert file_digests(project.images_dir / "danbooru-101.png") == original  # originals never modified


def test_repeats_change_moves_the_folder(project):
    add_images(project, kafka_records(2))
    export_dataset(open_project(project.root))
    project.set_section("export", {"repeats": {"main": 8}})
    res = export_dataset(open_project(project.root))
    assert files(project.dataset_dir) == ["8_main/danbooru-100.png", "8_main/danbooru-100.txt",
                                          "8_main/danbooru-101.png", "8_main/danbooru-101.txt"]
    assert res.removed == 4 and not (project.dataset_dir / "1_main").exists()


def test_copy_mode_extension_and_kill_leftovers(project):
    add_images(project, kafka_records(2))
    project.set_section("export", {"link": "copy", "caption_extension": "caption"})
    (project.dataset_dir / "1_main").mkdir(parents=True)
    (project.dataset_dir / "1_main" / ".danbooru-100.png.123.part").write_bytes(b"half")  # a killed run
    res = export_dataset(open_project(project.root))
    ds = project.dataset_dir / "1_main"
    assert res.copied == 2 and sorted(f.name for f in ds.iterdir()) == [
        "danbooru-100.caption", "danbooru-100.png", "danbooru-101.caption", "danbooru-101.png"]
    assert not os.path.samefile(ds / "danbooru-100.png", project.images_dir / "danbooru-100.png")
    assert export_dataset(open_project(project.root)).copied == 0  # same size and time: kept
    forced = export_dataset(open_project(project.root), force=True)
    assert (forced.copied, forced.captions_written) == (2, 2)


def test_missing_image_is_reported_and_the_rest_exported(project):
    add_images(project, kafka_records(3))
    (project.images_dir / "danbooru-101.png").unlink()
    res = export_dataset(open_project(project.root))
    assert res.skipped == ["danbooru-101: image file missing: images/danbooru-101.png"]
    assert res.folders == {"1_main": 2} and res.missing_trigger == 2


def test_repeats_table_precedence():
    table = repeats_table({"main": 10}, 2, [("main", 5), ("summer", 3), ("summer", 3), ("mixed", 1), ("mixed", 4),
                                             ("plain", None)])
    assert table == {"main": 10, "summer": 3, "mixed": 2, "plain": 2}


@pytest.mark.parametrize("underscores", [False, True])
def test_round_trip_export_import_export(project, tmp_path, underscores):
    from lorakiln.config.importing import ImportConfig
    from lorakiln.core.progress import NullProgress
    from lorakiln.services.importer import import_folder

    add_images(project, kafka_records(4) + zeta_records()[3:6])
    project.set_section("caption", {"underscores": underscores})
    project.set_section("export", {"repeats": {"main": 10, "summer": 3}})
    c = svc.Captions(open_project(project.root))
    svc.trigger(c)
    svc.order(svc.Captions(open_project(project.root)), "animagine", quality_tags=True)
    export_dataset(open_project(project.root))

    other = init_project(tmp_path / "again", "kafka2", ["kafka_hsr"])
    other.set_section("caption", {"underscores": underscores})
    import_folder(other, project.dataset_dir, ImportConfig(), NullProgress())
    export_dataset(open_project(other.root))

    def by_content(root):
        out = {}
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for img in folder.glob("*.png"):
                out[(folder.name, file_digests(img)[1])] = img.with_suffix(".txt").read_text()
        return out

    first, second = by_content(project.dataset_dir), by_content(other.dataset_dir)
    assert first == second and len(first) == 7
    assert {k[0] for k in first} == {"10_main", "3_summer"}
