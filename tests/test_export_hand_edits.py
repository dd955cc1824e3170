"""`kiln export` loses nothing silently (issue 10 hardening: it overwrote hand-edited captions and
deleted the user's files, reporting only counts): files an earlier export wrote and no longer
planned are removed, files kiln never wrote are kept and named, hand-edited captions are copied
to dataset/.kiln-replaced/ before they are overwritten."""

from __future__ import annotations

import json

from lorakiln.services.export import export_dataset
from lorakiln.services.export_record import RECORD_FILE
from lorakiln.services.project import open_project
from test_train_cli import _project


def test_hand_edits_and_foreign_files_are_kept_and_named(cli, tmp_path):
    root = _project(tmp_path, cli)
    ds = root / "dataset"
    (folder,) = [d for d in ds.iterdir() if d.is_dir()]
    caps = sorted(folder.glob("*.txt"))
    caps[0].write_text("my own words")
    (folder / "mine.png").write_bytes(b"not kiln's")
    (folder / "notes.md").write_text("keep me")
    code, out = cli("export", cwd=root)
    flat = " ".join(out.split())
    assert code == 0, out
    rel = f"{folder.name}/{caps[0].name}"
    assert "overwrote 1 hand-edited caption(s)" in flat and rel in flat and "kiln caption set" in flat
    assert (ds / ".kiln-replaced" / rel).read_text() == "my own words"
    assert caps[0].read_text() != "my own words"
    assert "left 2 file(s) kiln did not write" in flat and "mine.png" in flat and "notes.md" in flat
    assert (folder / "mine.png").is_file() and (folder / "notes.md").is_file()
    res = export_dataset(open_project(root))  # again: nothing replaced, the foreign files still named
    assert not res.replaced and res.foreign == [f"{folder.name}/mine.png", f"{folder.name}/notes.md"]


def test_files_of_an_earlier_export_are_removed_and_edited_ones_copied_first(cli, tmp_path):
    root = _project(tmp_path, cli)
    ds = root / "dataset"
    (old,) = [d for d in ds.iterdir() if d.is_dir()]
    cap = sorted(old.glob("*.txt"))[0]
    cap.write_text("edited by hand")
    proj = open_project(root)
    proj.set_section("export", {"repeats": {"main": 7}})
    res = export_dataset(open_project(root))
    assert not old.exists() and (ds / "7_main").is_dir()  # every file the last export wrote is gone
    assert res.removed_edited == [f"{old.name}/{cap.name}"] and not res.foreign
    assert (ds / ".kiln-replaced" / old.name / cap.name).read_text() == "edited by hand"
    assert any("removed 1 hand-edited" in n for n in res.notices())


def test_a_dataset_exported_by_an_older_kiln_loses_its_stale_folders(cli, tmp_path):
    """No file list in the record (an older kiln): files named after a record are kiln's, so a
    changed repeat count does not leave the old folder for training to read twice; other files stay."""
    root = _project(tmp_path, cli)
    ds = root / "dataset"
    (old,) = [d for d in ds.iterdir() if d.is_dir()]
    record = json.loads((ds / RECORD_FILE).read_text())
    del record["files"]  # an export from before the record listed its files
    (ds / RECORD_FILE).write_text(json.dumps(record))
    (old / "mine.png").write_bytes(b"not kiln's")
    proj = open_project(root)
    proj.set_section("export", {"repeats": {"main": 7}})
    res = export_dataset(open_project(root))
    assert sorted(p.name for p in old.iterdir()) == ["mine.png"] and (ds / "7_main").is_dir()
    assert res.foreign == [f"{old.name}/mine.png"] and res.removed > 0
    assert list((ds / ".kiln-replaced" / old.name).glob("*.txt"))  # their text was not known: copies kept
    res = export_dataset(open_project(root))  # the new record lists its files: nothing more to do
    assert res.removed == 0 and res.foreign == [f"{old.name}/mine.png"]
