"""After a kill and a resume, events.jsonl holds every step once and the final message counts what
this process ran (issue 10, item 21)."""

from __future__ import annotations

import json

import pytest

from lorakiln.core.events import EventLog
from lorakiln.core.progress import NullProgress
from lorakiln.services.train import plan_training, request_from_project, run_training
from interrupts import StopAfter
from test_train_fixtures import tiny_project

# 4 images, batch 2: 2 steps per epoch, 3 epochs = 6 steps; a state at the end of each epoch
TRAIN = {"max_train_epochs": 3, "train_batch_size": 2, "seed": 3,
         "network": {"network_dim": 2, "network_alpha": 2},
         "optimizer": {"optimizer": "AdamW", "lr_scheduler": "constant"},
         "save": {"save_every_n_epochs": 1, "save_state": True, "save_precision": "float"}}


def _train(proj, progress=None):
    return run_training(plan_training(request_from_project(proj)), progress or NullProgress())


def _events(run) -> list[dict]:
    return [json.loads(x) for x in (run.root / "events.jsonl").read_text().splitlines()]


def _killed_after_step_5(proj):
    """Killed while step 6 runs: steps 1-5 are logged, the newest state is step 4's."""
    with pytest.raises(KeyboardInterrupt):
        _train(proj, StopAfter(6, when="train"))


def test_resume_logs_each_step_once_and_counts_what_it_ran(tmp_path):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    _killed_after_step_5(proj)
    out = _train(proj)
    assert out.resumed and out.steps == 6 and out.first_step == 4
    assert out.ran() == "steps 5-6 (2 steps) of 6"
    events = _events(out.run)
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4, 5, 6]  # step 5 once, not twice
    resume = next(e for e in events if e["kind"] == "resume")
    assert resume["step"] == 4 and resume["reached_step"] == 5 and resume["dropped_events"] == 1
    assert [e["step"] for e in events if e["kind"] == "state"] == [2, 4, 6]
    assert [e["kind"] for e in events].count("end") == 1
    end = events[-1]
    assert end["kind"] == "end" and (end["step"], end["first_step"], end["ran"]) == (6, 4, 2)
    assert len(out.losses) == 2  # this process's steps only (batch 2, no accumulation)


def test_cli_message_says_what_this_process_ran(tmp_path, cli):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    _killed_after_step_5(proj)
    code, text = cli("train", cwd=proj.root)
    assert code == 0, text
    assert "resumed and ran steps 5-6 (2 steps) of 6 in" in text
    code, text = cli("train", "--resume", "--max-steps", "6", cwd=proj.root)  # nothing left to run
    assert code == 0, text
    assert "resumed and ran no step (all 6 were done before)" in text
    events = _events(next(r for r in _runs(proj)))
    assert [e["step"] for e in events if e["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [e["kind"] for e in events].count("end") == 1  # the first finish's end was cut, not doubled


def _runs(proj):
    from lorakiln.train.run import all_runs

    return all_runs(proj.runs_dir)


def test_rewind_cuts_after_the_state_and_a_torn_line(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.emit("plan", lines=[])
    log.emit("start", step=0)
    for s in (1, 2, 3):
        log.emit("step", step=s)
    log.emit("state", step=2)  # as a state save that came late
    log.emit("prune", path="old.safetensors")
    with open(log.path, "a") as fh:
        fh.write('{"t": 1, "kind": "st')  # a kill mid-write
    r = log.rewind(2)
    assert (r.kept, r.dropped, r.reached) == (4, 3, 3)
    assert [e["kind"] for e in log.read()] == ["plan", "start", "step", "step"]
    assert log.path.read_text().endswith("\n")  # the torn tail is gone: the next append starts clean
    log.emit("resume", step=2)
    assert [e["kind"] for e in log.read()][-1] == "resume"
    untouched = log.path.read_text()
    assert log.rewind(5).dropped == 0 and log.path.read_text() == untouched  # nothing past 5: kept as is
    log.emit("end", step=2)
    assert log.rewind(2).dropped == 1  # a finished process's end goes when its run is resumed
