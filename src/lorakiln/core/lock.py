"""One writer at a time per project: an advisory lock that names its holder.

The lock is `fcntl.flock` on a file in the project root. The kernel releases it when the
holder exits, however it exits (kill -9 included), so a lock left by a killed process is never
mistaken for a live one: the file stays, but nobody holds it. The file also says who holds it
(command, pid, host, start time), so a second writer can name the holder in its message.
Re-entrant within a process: `kiln run` holds it while its stages take it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lorakiln.core.errors import KilnError

LOCK_FILE = ".kiln.lock"
GRACE = 0.4  # seconds a writer retries before calling the project busy (`kiln status` peeks briefly)


@dataclass(frozen=True)
class Holder:
    command: str
    pid: int
    host: str
    since: str

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        return f"`{self.command}` (pid {self.pid}{where}, since {self.since})"


PROJECT_HINT = ("is writing this project; wait for it to finish, or rerun with `kiln --wait ...` to start "
                "when it does (read-only commands such as `kiln status` work meanwhile)")


class ProjectBusy(KilnError):
    def __init__(self, root: Path, holder: Holder | None, hint: str = PROJECT_HINT):
        self.holder = holder
        who = holder.describe() if holder else "another kiln process"
        super().__init__(f"{root}: {who} {hint}")


def this_command() -> str:
    """`kiln caption replace a b`, shortened and without credentials: what a second writer is told
    is running (it is written into the lock file)."""
    text = " ".join(["kiln", *(scrub_credentials(a) for a in sys.argv[1:])])
    return text if len(text) <= 120 else text[:117] + "..."


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api_?key|key|token|access_token|password|passwd|pass|secret|login|user_id|username)=)[^&#\s]*")


def scrub_credentials(text: str) -> str:
    """A URL's user:password@ and its key/token/login query values replaced by ***."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))


_held: dict[Path, "_Held"] = {}


@dataclass
class _Held:
    fd: int
    depth: int


def read_holder(root: Path) -> Holder | None:
    """Who wrote the lock file last (the holder, if the lock is held)."""
    try:
        data = json.loads((Path(root) / LOCK_FILE).read_text(encoding="utf-8"))
        return Holder(str(data["command"]), int(data["pid"]), str(data["host"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def current_holder(root: Path) -> Holder | None:
    """Who is writing the project now (None when nobody is), for read-only commands to show."""
    path = Path(root) / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            return None
        return read_holder(root) or Holder("kiln", 0, socket.gethostname(), "?")
    finally:
        os.close(fd)


def acquire(root: Path, command: str, wait: float = 0.0,
            on_wait: Callable[[Holder | None], None] | None = None, poll: float = 0.2,
            hint: str = PROJECT_HINT) -> None:
    """Take the project's lock for this process, waiting up to `wait` seconds (inf: forever)."""
    key = Path(root).resolve()
    if key in _held:
        _held[key].depth += 1
        return
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    start = time.monotonic()
    told = False
    while not _try_lock(fd):
        waited = time.monotonic() - start
        if waited >= max(wait, GRACE):
            os.close(fd)
            raise ProjectBusy(key, read_holder(key), hint)
        if on_wait and not told and waited >= GRACE:
            on_wait(read_holder(key))
            told = True
        time.sleep(min(poll, GRACE / 4))
    _write_holder(fd, command)
    _held[key] = _Held(fd, 1)


def release(root: Path) -> None:
    key = Path(root).resolve()
    held = _held.get(key)
    if held is None:
        return
    held.depth -= 1
    if held.depth == 0:
        del _held[key]
        os.close(held.fd)  # closing the descriptor releases the flock


def holds(root: Path) -> bool:
    return Path(root).resolve() in _held


class project_lock:
    """`with project_lock(root, "kiln tag"):` the body runs as the project's only writer."""

    def __init__(self, root: Path, command: str, wait: float = 0.0, on_wait=None, hint: str = PROJECT_HINT):
        self.root, self.command, self.wait, self.on_wait, self.hint = Path(root), command, wait, on_wait, hint

    def __enter__(self) -> "project_lock":
        acquire(self.root, self.command, self.wait, self.on_wait, hint=self.hint)
        return self

    def __exit__(self, *exc) -> None:
        release(self.root)


def _try_lock(fd: int, how: int = fcntl.LOCK_EX) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _write_holder(fd: int, command: str) -> None:
    info = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
