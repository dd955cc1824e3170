"""One writer per project: the lock, its messages, waiting, stale locks, and manifest merges.

The concurrency tests run real `kiln` processes against one project folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_caption_data import add_images, kafka_records

from lorakiln.core import lock
from lorakiln.core.manifest import Manifest
from lorakiln.core.records import ImageRecord
from lorakiln.services.project import open_project

ENV = {**os.environ, "COLUMNS": "300"}


@pytest.fixture
def proj(project):
    add_images(project, kafka_records(4))
    return project


def kiln(root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorakiln", *args], cwd=root, capture_output=True,
                          text=True, env=ENV, timeout=120, **kw)


def start_kiln(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lorakiln", *args], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


HOLDER = textwrap.dedent("""
    import sys, time
    from lorakiln.core import lock
    lock.acquire(sys.argv[1], "kiln fetch danbooru kafka")
    print("held", flush=True)
    sys.stdin.readline()  # hold until told (or killed)
""")


def hold(root: Path) -> subprocess.Popen:
    """Another process holding the project lock, as a running `kiln fetch` would."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def captions(root: Path) -> dict[str, list[str] | None]:
    return {r.id: r.caption for r in open_project(root).manifest()}


def test_second_writer_stops_naming_the_holder_and_readers_go_on(proj):
    holder = hold(proj.root)
    try:
        res = kiln(proj.root, "caption", "replace", "smile", "grin")
        assert res.returncode == 1
        assert "`kiln fetch danbooru kafka`" in res.stderr and f"pid {holder.pid}" in res.stderr
        assert "--wait" in res.stderr
        assert all(c is None for c in captions(proj.root).values())  # nothing written
        # read-only commands keep working and say who is writing
        st = kiln(proj.root, "status")
        assert st.returncode == 0 and "being written by `kiln fetch danbooru kafka`" in st.stdout
        assert kiln(proj.root, "caption", "history").returncode == 0
        assert kiln(proj.root, "caption", "replace", "smile", "grin", "--dry-run").returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_wait_starts_when_the_holder_finishes(proj):
    holder = hold(proj.root)
    waiter = start_kiln(proj.root, "--wait", "caption", "replace", "smile", "grin")
    try:
        line = waiter.stderr.readline()
        assert "waiting for `kiln fetch danbooru kafka`" in line
        assert waiter.poll() is None
    finally:
        holder.stdin.write("done\n")
        holder.stdin.flush()
        holder.wait()
    assert waiter.wait(timeout=120) == 0
    assert any("grin" in (c or []) for c in captions(proj.root).values())


def test_a_killed_holder_leaves_no_lock(proj):
    holder = hold(proj.root)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (proj.root / lock.LOCK_FILE).exists()  # the file stays; nobody holds it
    assert lock.current_holder(proj.root) is None
    res = kiln(proj.root, "caption", "replace", "smile", "grin")
    assert res.returncode == 0, res.stderr


def test_overlapping_caption_edits_keep_both_and_undo_only_the_last(proj):
    """Two `kiln caption replace` started together: both edits land, history and undo agree."""
    a = start_kiln(proj.root, "--wait", "caption", "replace", "smile", "grin")
    b = start_kiln(proj.root, "--wait", "caption", "replace", "hat", "beret")
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    caps = [c or [] for c in captions(proj.root).values()]
    assert any("grin" in c for c in caps) and any("beret" in c for c in caps)
    assert not any("smile" in c or "hat" in c for c in caps)
    assert kiln(proj.root, "caption", "undo").returncode == 0
    after = [c or [] for c in captions(proj.root).values()]
    # exactly one of the two edits was undone: the one recorded last
    assert (any("smile" in c for c in after)) != (any("hat" in c for c in after))


def test_manifest_save_keeps_records_another_writer_saved(tmp_path):
    """A writer that did not take the lock (or a hand edit) is merged, never overwritten."""
    path = tmp_path / "manifest.jsonl"
    base = Manifest(path, [ImageRecord(id=f"x-{i}", source="local") for i in range(3)])
    base.save()
    mine, theirs = Manifest.load(path), Manifest.load(path)
    theirs["x-0"].caption = ["theirs"]
    theirs.add(ImageRecord(id="x-9", source="local"))
    time.sleep(0.01)  # a different mtime even on coarse clocks
    theirs.save()
    mine["x-1"].caption = ["mine"]
    mine.add(ImageRecord(id="x-5", source="local"))
    mine.save()
    final = Manifest.load(path)
    assert final["x-0"].caption == ["theirs"] and final["x-1"].caption == ["mine"]
    assert {"x-5", "x-9"} <= {r.id for r in final}
    assert mine["x-0"].caption == ["theirs"]  # the saver sees the merged state too


def test_manifest_saves_without_interference_are_plain_rewrites(tmp_path):
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path, [ImageRecord(id="a", source="local")])
    m.save()
    m["a"].caption = ["one"]
    m.save()
    m["a"].caption = ["two"]
    m.save()
    assert Manifest.load(path)["a"].caption == ["two"]


def test_lock_is_reentrant_in_one_process(tmp_path):
    with lock.project_lock(tmp_path, "kiln run"):
        with lock.project_lock(tmp_path, "kiln tag"):
            assert lock.holds(tmp_path)
        assert lock.holds(tmp_path)
    assert not lock.holds(tmp_path)


def test_a_run_is_continued_by_one_process_only(cli, tmp_path):
    """Two `kiln train` of the same config would both continue the same unfinished run."""
    from test_train_cli import _project

    proj = _project(tmp_path, cli)
    code, out = cli("train", "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--dim", "2", cwd=proj)
    assert code == 0, out
    run = next((proj / "runs").iterdir())
    holder = hold(run)
    try:
        code, out = cli("train", "--resume", "--max-steps", "2", cwd=proj)
        assert code == 1 and "is training this run" in out and f"pid {holder.pid}" in out
    finally:
        holder.kill()
        holder.wait()
    code, out = cli("train", "--resume", "--max-steps", "2", cwd=proj)
    assert code == 0, out


def test_credentials_typed_on_the_command_line_never_reach_the_lock_file(project):
    """The lock file names the running command; a key in a --base-url must not be written there."""
    res = kiln(project.root, "fetch", "danbooru", "kilnchan solo", "--base-url",
               "http://me:supersecretkey123@127.0.0.1:9/?api_key=qsecret999&login=me")
    assert res.returncode == 1 and "command line: --base-url" in res.stderr
    assert "project.toml" not in res.stderr
    for path in project.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"qsecret999" not in data and b"supersecretkey123" not in data, path
    assert "***" in (project.root / lock.LOCK_FILE).read_text()
