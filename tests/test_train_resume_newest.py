"""`kiln train --resume` names the newest run, and a run whose process is gone shows as interrupted
(issue 10 hardening: --resume quietly continued an older finished run; a killed run stayed "running")."""

from __future__ import annotations

import pytest

from lorakiln.core import lock
from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress
from lorakiln.services.runs import list_runs
from lorakiln.services.train import plan_training, request_from_project, run_training
from lorakiln.services.train_resume import resume_request
from lorakiln.train.run import all_runs
from interrupts import StopAfter
from test_train_fixtures import tiny_project

# 4 images, batch 2: 2 steps per epoch, 2 epochs; a state at the end of each epoch
TRAIN = {"max_train_epochs": 2, "train_batch_size": 2, "seed": 3,
         "network": {"network_dim": 2, "network_alpha": 2},
         "optimizer": {"optimizer": "AdamW", "lr_scheduler": "constant"},
         "save": {"save_every_n_epochs": 1, "save_state": True, "save_precision": "float"}}


def _train(proj, progress=None, force=False):
    return run_training(plan_training(request_from_project(proj)), progress or NullProgress(), force=force)


class _Watch(NullProgress):
    """Records, at each training step, whether the run being trained holds its run lock."""

    def __init__(self, runs_dir):
        super().__init__()
        self.runs_dir, self.held = runs_dir, []

    def task(self, description, total=None):
        cm = super().task(description, total)
        if "train" not in description:
            return cm
        watch = self

        class _Cm:
            def __enter__(self):
                t = cm.__enter__()
                inner = t.advance

                def advance(k=1, **f):
                    inner(k, **f)
                    run = all_runs(watch.runs_dir)[-1]
                    watch.held.append((lock.current_holder(run.root) is not None, run.status()))
                t.advance = advance
                return t

            def __exit__(self, *exc):
                return cm.__exit__(*exc)

        return _Cm()


def test_a_new_run_holds_its_lock_while_it_trains(tmp_path):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    watch = _Watch(proj.runs_dir)
    out = _train(proj, watch)
    assert watch.held and all(h == (True, "running") for h in watch.held)
    assert lock.current_holder(out.run.root) is None and out.run.status() == "done"


def test_resume_alone_takes_the_newest_run_and_says_it_has_no_state(tmp_path, cli):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    done = _train(proj).run
    with pytest.raises(KeyboardInterrupt):  # `kiln train --force` stopped at step 1, before any state
        _train(proj, StopAfter(2, when="train"), force=True)
    killed = all_runs(proj.runs_dir)[-1]
    assert killed.root != done.root and killed.info()["status"] == "running"
    assert killed.status() == "interrupted"  # nobody holds its lock
    assert {r["id"]: r["status"] for r in list_runs(proj)} == {done.id: "done", killed.id: "interrupted"}
    with pytest.raises(KilnError, match=f"run {killed.id} was interrupted at step 1 and has no saved state"):
        resume_request(proj, None, None)
    code, text = cli("train", "--resume", cwd=proj.root)
    # run ids of the same second differ by a suffix (`...-kiln-demo-2`): look for the done one alone
    assert code == 1 and killed.id in text and "kiln train --force" in text
    assert done.id not in text.replace(killed.id, "<killed>")
    code, text = cli("runs", "list", cwd=proj.root)
    assert "interrupted" in " ".join(text.split())


def test_resume_of_a_run_being_trained_is_refused(tmp_path):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    with pytest.raises(KeyboardInterrupt):
        _train(proj, StopAfter(3, when="train"))  # step 2 done: the epoch's state is saved
    run = all_runs(proj.runs_dir)[-1]
    assert run.status() == "interrupted"
    assert resume_request(proj, None, None)[1].root == run.root  # resumable
    with lock.project_lock(run.root, "kiln train"):  # as a live training process holds it
        assert run.status() == "running"
        with pytest.raises(KilnError, match="`kiln train` .* is training this run"):
            resume_request(proj, None, None)


def test_cli_says_what_resume_does(tmp_path, cli):
    proj = tiny_project(tmp_path / "p", train=TRAIN)
    with pytest.raises(KeyboardInterrupt):
        _train(proj, StopAfter(3, when="train"))
    run = all_runs(proj.runs_dir)[-1]
    code, text = cli("train", "--resume", cwd=proj.root)
    assert code == 0, text
    assert f"continuing run {run.id} (interrupted) from its saved state at step 2" in " ".join(text.split())
    assert run.status() == "done"
