"""A --data folder that an interrupted `kiln export` left partial is refused like the project's own
dataset/ (issue 10 hardening: `kiln train --data dataset` trained on 28 of 30 images)."""

from __future__ import annotations

import shutil

import pytest

from lorakiln.services.export import export_dataset
from lorakiln.services.project import open_project
from interrupts import StopAfter
from test_train_cli import _project


def test_a_data_folder_left_by_a_killed_export_is_refused_in_and_out_of_a_project(cli, tmp_path):
    root = _project(tmp_path, cli)
    shutil.rmtree(root / "dataset")
    with pytest.raises(KeyboardInterrupt):
        export_dataset(open_project(root), StopAfter(1, when="export"))
    args = ("train", "--dry-run", "--no-memory", "--base", "tiny-sd15")
    code, out = cli(*args, "--data", root / "dataset", cwd=root)
    assert code == 1 and "interrupted" in out and "kiln export" in out
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code, out = cli(*args, "--data", root / "dataset", cwd=outside)
    assert code == 1 and "interrupted" in out
    code, out = cli(*args, "--data", tmp_path / "src", "--reg-data", root / "dataset", cwd=outside)
    assert code == 1 and "interrupted" in out
    assert cli("export", cwd=root)[0] == 0
    code, out = cli(*args, "--data", root / "dataset", cwd=outside)
    assert code == 0, out
