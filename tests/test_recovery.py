"""A kill -9 in the middle of a multi-file update is finished by the next writer; partial files go."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_caption_data import add_images, kafka_records

from lorakiln.core import journal
from lorakiln.services.project import open_project

ENV = {**os.environ, "COLUMNS": "300"}

# `kiln caption order --style pony` in a process that is killed (SIGKILL) right after the
# captions were saved and before project.toml got the new keep_tokens
KILLED_ORDER = textwrap.dedent("""
    import os, signal, sys
    from lorakiln.services import caption as svc
    from lorakiln.services.project import Project, open_project

    def die(self, values):
        os.kill(os.getpid(), signal.SIGKILL)

    Project.set_values = die
    c = svc.Captions(open_project(sys.argv[1]))
    svc.order(c, "pony", svc.Selection(), False, quality_tags=True, rating_tags=True)
""")


def kiln(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorakiln", *args], cwd=root, capture_output=True,
                          text=True, env=ENV, timeout=120)


@pytest.fixture
def proj(project):
    add_images(project, kafka_records(4))
    assert kiln(project.root, "caption", "trigger").returncode == 0
    return project


def test_caption_order_killed_between_files_is_finished_by_the_next_writer(proj):
    root = proj.root
    keep_before = open_project(root).get_value(("caption", "keep_tokens"))
    run = subprocess.run([sys.executable, "-c", KILLED_ORDER, str(root)], env=ENV)
    assert run.returncode == -9
    # half done: captions reordered, keep_tokens not yet written, the journal says what is left
    caps = [r.caption for r in open_project(root).manifest()]
    assert all(c and "source_anime" in c for c in caps)
    assert open_project(root).get_value(("caption", "keep_tokens")) == keep_before
    assert journal.pending(root) is not None
    st = kiln(root, "status")
    assert "`kiln caption order` was interrupted" in st.stdout
    hist = kiln(root, "caption", "history")  # read-only: finishes nothing
    assert journal.pending(root) is not None and "order" in hist.stdout

    res = kiln(root, "export")
    assert res.returncode == 0, res.stderr
    assert "finished `kiln caption order`" in res.stderr
    assert journal.pending(root) is None
    keep_after = open_project(root).get_value(("caption", "keep_tokens"))
    assert keep_after != keep_before
    # the finished edit undoes as one: captions and keep_tokens both come back
    assert kiln(root, "caption", "undo").returncode == 0
    assert open_project(root).get_value(("caption", "keep_tokens")) == keep_before
    assert all("source_anime" not in (r.caption or []) for r in open_project(root).manifest())


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_partial_files_of_killed_writers_are_removed_and_live_ones_kept(proj):
    root, dead = proj.root, _dead_pid()
    stale = [root / f".project.toml.{dead}.abcdefgh.part", root / ".project.toml.k2j4h5g6.part",
             root / "images" / f".danbooru-1.png.{dead}.a1b2c3d4.part",
             root / "cache" / f".page.json.{dead}.zzzzzzzz.part"]
    live = root / "images" / f".danbooru-2.png.{os.getpid()}.a1b2c3d4.part"  # a writer still running
    for p in [*stale, live]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    res = kiln(root, "export")
    assert res.returncode == 0, res.stderr
    assert "removed 4 partial file(s)" in res.stderr
    assert not any(p.exists() for p in stale)
    assert live.exists()


# `kiln subset move --tag hat --to hats`, killed after the history line and before the manifest
KILLED_MOVE = textwrap.dedent("""
    import os, signal, sys
    from lorakiln.config.tag import TagConfig
    from lorakiln.core.manifest import Manifest
    from lorakiln.services import subset as svc
    from lorakiln.services.project import open_project

    def die(self):
        os.kill(os.getpid(), signal.SIGKILL)

    Manifest.save = die
    p = open_project(sys.argv[1])
    svc.move(p, "hats", tags=["hat"], tag_cfg=TagConfig())
""")


def test_subset_move_killed_between_history_and_manifest_is_finished(proj):
    root = proj.root
    run = subprocess.run([sys.executable, "-c", KILLED_MOVE, str(root)], env=ENV)
    assert run.returncode == -9
    assert "hats" in (root / "subset_history.jsonl").read_text()  # logged, not applied
    assert all(r.subset == "main" for r in open_project(root).manifest())
    res = kiln(root, "subset", "list")  # read-only: finishes nothing, changes nothing
    assert "hats" not in res.stdout
    res = kiln(root, "export")
    assert "finished `kiln subset move`" in res.stderr
    moved = [r.id for r in open_project(root).manifest() if r.subset == "hats"]
    assert moved
    res = kiln(root, "subset", "undo")
    assert res.returncode == 0 and f"{len(moved)} images put back" in res.stdout
    assert all(r.subset == "main" for r in open_project(root).manifest())
