"""Hostile folder entries for import, doctor and train tests: odd names, links, pipes, captions.

`pipe_guard` makes named pipes and answers any reader that opens one, so code that would block
on a pipe forever reads b"hung" and its test fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lorakiln.demo.images import Spec, make_image

NON_UTF8 = b"\xff\xfe-bad"  # not UTF-8: Python keeps these bytes as lone surrogates in str


def image(path: Path | bytes, seed: int, caption: bytes | None = None) -> None:
    """A small real PNG (distinct per seed) and, given bytes, a .txt beside it."""
    make_image(Spec(seed=seed, width=48, height=64)).save(path, format="PNG")
    if caption is not None:
        stem = os.path.splitext(os.fsencode(path))[0]
        with open(stem + b".txt", "wb") as f:
            f.write(caption)


def odd_names(folder: Path) -> dict[str, object]:
    """Entries that once aborted a whole import, next to two good images; returns what was made."""
    folder.mkdir(parents=True, exist_ok=True)
    image(folder / "good.png", 1, b"kafka, smile")
    (folder / "loop.png").symlink_to("loop.png")  # RuntimeError: Symlink loop
    (folder / "broken.png").symlink_to("gone.png")
    (folder / "folder.png").mkdir()  # a folder named like an image
    raw = os.fsencode(folder)
    image(raw + b"/" + NON_UTF8 + b".png", 2, b"kafka, odd_name")
    os.mkdir(raw + b"/3_" + NON_UTF8)
    image(raw + b"/3_" + NON_UTF8 + b"/inner.png", 3, b"kafka, odd_folder")
    return {"good": 3, "errors": {"loop.png", "broken.png"}}


@pytest.fixture
def pipe_guard():
    stop = threading.Event()
    pipes: list[Path] = []

    def make(path: Path) -> Path:
        os.mkfifo(path)
        pipes.append(path)
        return path

    def answer_readers() -> None:
        while not stop.wait(0.02):
            for p in list(pipes):
                try:  # succeeds only while someone has the pipe open for reading
                    fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                os.write(fd, b"hung")
                os.close(fd)

    t = threading.Thread(target=answer_readers, daemon=True)
    t.start()
    yield make
    stop.set()
    t.join()
