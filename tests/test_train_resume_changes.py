"""`kiln train --resume` keeps the run's own config but says what changed since the run started
(issue 10 hardening: a changed max_train_epochs and re-exported captions were silently ignored)."""

from __future__ import annotations

import pytest

from lorakiln.core.progress import NullProgress
from lorakiln.services.project import open_project
from lorakiln.services.train import plan_training, request_from_project, run_training
from lorakiln.services.train_resume import resume_changes, resume_request
from lorakiln.train.run import all_runs
from interrupts import StopAfter
from test_train_fixtures import tiny_project
from test_train_resume_newest import TRAIN


def _interrupted(tmp_path):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    with pytest.raises(KeyboardInterrupt):
        run_training(plan_training(request_from_project(proj)), StopAfter(3, when="train"))
    return proj, all_runs(proj.runs_dir)[-1]


def _changes(root, run):
    proj = open_project(root)
    req, _ = resume_request(proj, run.id, None)
    return resume_changes(proj, run, plan_training(req))


def test_nothing_changed_says_nothing(tmp_path):
    proj, run = _interrupted(tmp_path)
    assert _changes(proj.root, run) is None


def test_changed_settings_and_data_are_named_and_the_run_keeps_its_own(tmp_path, cli):
    proj, run = _interrupted(tmp_path)
    proj.set_section("train", {**TRAIN, "max_train_epochs": 3})
    cap = next((proj.dataset_dir / "1_main").glob("*.txt"))
    cap.write_text(cap.read_text() + ", new tag")
    text = _changes(proj.root, run)
    assert "project.toml now has max_train_epochs = 3 (the run keeps 2)" in text
    assert "the dataset changed since the run started" in text and "`kiln train` for a new run" in text
    code, out = cli("train", "--resume", run.id, cwd=proj.root)
    flat = " ".join(out.split())
    assert code == 0 and "max_train_epochs = 3 (the run keeps 2)" in flat and "dataset changed" in flat, out
    assert run.status() == "done" and run.read_config()["train"]["max_train_epochs"] == 2
