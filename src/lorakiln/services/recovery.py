"""What the next writer does first after a kiln process was killed: finish or clean up its work.

Called once the project lock is held (cli/common.hold_project), so nothing else is writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from lorakiln.core import journal
from lorakiln.core.atomic import clean_partials
from lorakiln.core.errors import KilnError


def _finish_caption(project, payload) -> None:
    from lorakiln.services.caption import finish_pending

    finish_pending(project, payload)


def _finish_subset(project, payload) -> None:
    from lorakiln.services.subset import finish_pending

    finish_pending(project, payload)


# journal kind -> how to finish it (one line per kind of multi-file update)
finishers: dict[str, Callable] = {"caption": _finish_caption, "subset": _finish_subset}


def finish_interrupted(root: Path) -> list[str]:
    """Finish an interrupted multi-file update and remove partial files; what was done, as lines."""
    from lorakiln.services.project import open_project

    lines = []
    removed = clean_partials(root)
    if removed:
        lines.append(f"removed {removed} partial file(s) left by a killed kiln process")
    todo = journal.pending(root)
    if todo is not None:
        finish = finishers.get(todo.kind)
        if finish is None:
            raise KilnError(f"{Path(root) / journal.JOURNAL_FILE}: unknown kind of update {todo.kind!r}")
        finish(open_project(root), todo.payload)
        lines.append(f"finished `{todo.what}`, which a killed kiln process had started")
    return lines
