"""kiln run: every stage in order, stopping at --until, killed midway and resumed."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue
from lorakiln.demo.tagger import write_demo_tagger
from lorakiln.services.demo import demo_settings, own_pictures
from lorakiln.services.pipeline import ORDER, stages_between
from lorakiln.services.project import init_project, open_project


@pytest.fixture
def demo_project(tmp_path):
    pictures = own_pictures(tmp_path / "pics", n=4)
    tagger = write_demo_tagger(tmp_path / "tagger")
    proj = init_project(tmp_path / "p", "mini", ["kilnchan"], base="tiny-sd15", character=CHARACTER)
    with BooruReplay(demo_catalogue(8, scale=0.3), site="danbooru") as booru:
        settings = demo_settings(booru.url, pictures, tagger)
        settings[("train", "save", "save_state_every_n_steps")] = 1  # a kill leaves a state to resume
        proj.set_values(settings)
        yield proj


def _events(root: Path) -> list[dict]:
    out = []
    for f in root.glob("runs/*/events.jsonl"):
        for line in f.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def test_stage_selection():
    assert stages_between(None, "caption", []) == ORDER[: ORDER.index("caption") + 1]
    assert stages_between("train", None, ["eval"]) == ["train", "card"]
    with pytest.raises(Exception, match="unknown stage 'nope'"):
        stages_between(None, "nope", [])
    with pytest.raises(Exception, match="comes after"):
        stages_between("train", "tag", [])


KILL_AT_FIRST_STEP = """
import os, signal, sys
from lorakiln.core.events import EventLog
from lorakiln.cli.app import main

emit = EventLog.emit
def emit_then_die(self, kind, **data):
    event = emit(self, kind, **data)
    if kind == "step":
        os.kill(os.getpid(), signal.SIGKILL)
    return event
EventLog.emit = emit_then_die
sys.argv = ["kiln", *sys.argv[1:]]
main()
"""


def test_run_until_caption_then_killed_in_training_and_resumed(demo_project, cli):
    root = demo_project.root
    code, out = cli("run", "--until", "caption", cwd=root)
    assert code == 0, out
    for stage in ("fetch", "import", "dedupe", "filter", "tag", "caption"):
        assert f" {stage} " in out
    m = open_project(root).manifest()
    assert all(r.caption and r.caption[0] == "kilnchan" for r in m.kept())
    assert not list(root.glob("dataset/*")) and not list(root.glob("runs/*"))

    # the rest in a real process that SIGKILLs itself right after training's first step event:
    # the kill lands at that point however loaded the machine is (a poll from here could miss it)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILL_AT_FIRST_STEP, "run", "--from", "plan"], cwd=root, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert any(e.get("kind") == "step" for e in _events(root))
    assert not list(root.rglob("*.part"))

    code, out = cli("run", cwd=root)  # resumes: nothing fetched twice, training continues
    assert code == 0, out
    assert "done train" in out or "skip train" in out
    runs = [p for p in root.glob("runs/*") if (p / "run.json").exists()]
    done = [p for p in runs if json.loads((p / "run.json").read_text()).get("status") == "done"]
    assert len(done) == 1
    run = done[0]
    assert (run / "mini.safetensors").is_file()
    pick = json.loads((run / "eval" / "summary.json").read_text())["recommended"]
    # the tiny model's pictures are noise to the demo tagger: no metric can see the character
    assert pick["status"] == "cannot_judge" and "no metric here can see the character" in pick["reason"]
    assert (run / "card.md").is_file()
    ids = [json.loads(line)["id"] for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids))

    code, out = cli("run", cwd=root)  # everything is done: nothing is redone
    assert code == 0, out
    assert "skip train" in out and "already trained" in out
    assert "0 images downloaded" in out


def test_first_failing_stage_stops_the_run(demo_project, cli):
    demo_project.set_values({("tag", "model"): str(demo_project.root / "no-such-model")})
    code, out = cli("run", cwd=demo_project.root)
    assert code == 1
    assert "stage tag failed" in out and "model.onnx" in out
    assert not list(demo_project.root.glob("dataset/*"))


def test_run_output_keeps_table_names(project, cli):
    # nothing to fetch or import: the summaries name the project.toml tables to fill in
    code, out = cli("run", "--until", "import", cwd=project.root)
    assert code == 0, out
    assert "[[fetch.queries]]" in out and "[run].import_folders" in out


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, cli):
    mine = tmp_path / "my-work"
    mine.mkdir()
    (mine / "thesis.txt").write_text("precious")
    code, out = cli("demo", "--dir", mine, cwd=tmp_path)
    assert code == 1 and "not an earlier demo" in out
    assert (mine / "thesis.txt").read_text() == "precious"


def test_demo_in_a_relative_folder_finds_its_pictures_and_tagger(tmp_path, monkeypatch):
    # `./dev demo` uses the relative default demo-out: project.toml paths must not depend on the cwd
    from lorakiln.core.progress import NullProgress
    from lorakiln.services.demo import prepare_demo
    from lorakiln.services.pipeline import run_pipeline

    monkeypatch.chdir(tmp_path)
    proj, pictures, tagger = prepare_demo(Path("demo-out"))
    with BooruReplay(demo_catalogue(2, scale=0.3), site="danbooru") as booru:
        proj.set_values(demo_settings(booru.url, pictures, tagger))
        done = {r.stage: r for r in run_pipeline(open_project(proj.root), NullProgress(), until="tag")}
    assert "6 images imported" in done["import"].summary and not done["tag"].skipped

