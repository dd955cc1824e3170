"""dataset/.kiln-export.json: a killed or stale export is visible, and `kiln train` in a project
does not quietly train on it (issue 10 hardening: a killed export left 1 of 24 images, and train
trained on it with nothing but a note)."""

from __future__ import annotations

import json

import pytest

from lorakiln.core.errors import KilnError
from lorakiln.services.export import export_dataset
from lorakiln.services.export_record import RECORD_FILE, dataset_problem
from lorakiln.services.project import open_project
from lorakiln.services.train import plan_training, request_from_project
from interrupts import StopAfter
from test_train_cli import _project


def _plan(root):
    return plan_training(request_from_project(open_project(root)))


def test_a_completed_export_is_recorded_and_current(cli, tmp_path):
    root = _project(tmp_path, cli)  # kiln import + kiln export
    record = json.loads((root / "dataset" / RECORD_FILE).read_text())
    assert record["state"] == "complete" and record["images"] == 4 and record["not_written"] == 0
    assert dataset_problem(open_project(root)) is None
    assert not any("kiln export" in w for w in _plan(root).warnings)
    code, out = cli("status", cwd=root)
    assert code == 0 and "kiln export" not in out


def test_a_killed_export_is_refused_by_train_until_exported_again(cli, tmp_path):
    root = _project(tmp_path, cli)
    code, out = cli("caption", "replace", "1girl", "girl", cwd=root)
    assert code == 0, out
    with pytest.raises(KeyboardInterrupt):  # killed after its first image, as kill -9 would leave it
        export_dataset(open_project(root), StopAfter(1, when="export"), force=True)
    problem = dataset_problem(open_project(root))
    assert problem.severity == "error" and "interrupted" in problem.message
    with pytest.raises(KilnError, match="interrupted.*kiln export"):
        _plan(root)
    for args in (("train",), ("train", "--dry-run", "--no-memory")):
        code, out = cli(*args, cwd=root)
        assert code == 1 and "interrupted" in out and "kiln export" in out
    code, out = cli("status", cwd=root)
    assert code == 0 and "interrupted" in out
    assert cli("export", cwd=root)[0] == 0
    assert dataset_problem(open_project(root)) is None


def test_captions_edited_after_the_export_make_train_warn(cli, tmp_path):
    root = _project(tmp_path, cli)
    assert cli("caption", "replace", "1girl", "girl", cwd=root)[0] == 0
    problem = dataset_problem(open_project(root))
    assert problem.severity == "warning" and "out of date" in problem.message
    assert any("out of date" in w and "kiln export" in w for w in _plan(root).warnings)
    code, out = cli("train", "--dry-run", "--no-memory", cwd=root)
    assert code == 0 and "out of date" in " ".join(out.split())
    code, out = cli("status", cwd=root)
    assert "out of date" in " ".join(out.split())
    assert cli("export", cwd=root)[0] == 0
    assert dataset_problem(open_project(root)) is None


def test_repeats_and_dropped_images_make_it_stale_too(cli, tmp_path):
    root = _project(tmp_path, cli)
    p = open_project(root)
    p.set_section("export", {"repeats": {"main": 5}})
    assert "out of date" in dataset_problem(open_project(root)).message
    assert cli("export", cwd=root)[0] == 0
    m = open_project(root).manifest()
    next(iter(m.kept())).drop("by hand")
    m.save()
    assert "out of date" in dataset_problem(open_project(root)).message


def test_a_dataset_not_written_by_export_is_named(cli, tmp_path):
    root = _project(tmp_path, cli)
    (root / "dataset" / RECORD_FILE).unlink()  # an export of an older kiln, or a folder copied in by hand
    assert "not written by a completed `kiln export`" in dataset_problem(open_project(root)).message
    code, out = cli("train", "--dry-run", "--no-memory", "--data", root / "dataset", cwd=root)
    assert code == 0 and "kiln export" not in out  # a folder named with --data is taken as it is
