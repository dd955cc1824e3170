"""kiln subset: move images between subsets (concepts, outfits) and undo the last move.

A move changes `record.subset` in the manifest; nothing on disk moves (images/ stays as it
is; `kiln export` writes dataset/<repeats>_<subset>/ from the manifest). Each move is first
appended to subset_history.jsonl, one JSON object per line:
{"seq", "op": "move", "time", "to", "args", "changes": [{"id", "before", "after"}]}, and an
undo appends {"seq", "op": "undo", "undoes": seq, "time", "restored": [...]}. Undo puts each
image of the newest move not yet undone back in its `before` subset, provided it is still in
`after` (an image moved again since, or gone from the manifest, is left alone and reported).
A move or an undo is written to the project's journal first, then to the history and the
manifest, so a kill between the two is finished by the next kiln command that writes the
project (services/recovery.py); a line cut short by a kill is ignored and cut off before the
next append.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from lorakiln.config.tag import TagConfig
from lorakiln.core import journal
from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.dataset.filters import norm_tag
from lorakiln.services.filter import record_tags
from lorakiln.services.project import Project

HISTORY_FILE = "subset_history.jsonl"
JOURNAL_KIND = "subset"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_name(name: str, option: str = "--to") -> str:
    """Subset names follow fetch's --subset rule: they become dataset folder names."""
    if not _NAME.match(name or ""):
        raise KilnError(f"{option} {name!r}: subset names use letters, digits, '_', '-' or '.' "
                        "(and start with a letter or digit)")
    return name


# -- pure core -------------------------------------------------------------------------
def image_tags(r: ImageRecord, tag_cfg: TagConfig) -> frozenset[str]:
    """The caption if the image has one, else its booru and tagger tags (as `kiln filter` sees them)."""
    if r.caption is not None:
        return frozenset(norm_tag(t) for t in r.caption)
    return record_tags(r, tag_cfg)


@dataclass
class Selection:
    chosen: list[ImageRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # --id not in the manifest
    elsewhere: list[str] = field(default_factory=list)  # --id not in the --from subset


def select(records: Iterable[ImageRecord], ids: list[str], tags: list[str], from_subset: str | None,
           tags_of: Callable[[ImageRecord], frozenset[str]]) -> Selection:
    """Images named by id, plus images having every one of `tags`; only those in `from_subset` if given.
    With neither ids nor tags, every image of `from_subset`."""
    by_id = {r.id: r for r in records}
    want = {norm_tag(t) for t in tags}
    sel = Selection()
    picked: dict[str, ImageRecord] = {}
    for rid in dict.fromkeys(ids):
        r = by_id.get(rid)
        if r is None:
            sel.missing.append(rid)
        elif from_subset is not None and r.subset != from_subset:
            sel.elsewhere.append(rid)
        else:
            picked[rid] = r
    for r in by_id.values():
        if from_subset is not None and r.subset != from_subset:
            continue
        if (want and want <= tags_of(r)) or (not ids and not tags):
            picked.setdefault(r.id, r)
    sel.chosen = list(picked.values())
    return sel


# -- history ---------------------------------------------------------------------------
def history_path(project: Project) -> Path:
    return project.root / HISTORY_FILE


def read_history(path: Path) -> list[dict[str, Any]]:
    """Entries in order; a line cut short by a kill is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(e, dict) and "seq" in e and "op" in e:
            out.append(e)
    return out


def _append(path: Path, entry: dict[str, Any]) -> None:
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # a kill cut the last append short
            with open(path, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def last_move(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest move not undone yet."""
    undone = {e.get("undoes") for e in entries if e["op"] == "undo"}
    moves = [e for e in entries if e["op"] == "move" and e["seq"] not in undone]
    return moves[-1] if moves else None


# -- service ---------------------------------------------------------------------------
@dataclass
class MoveReport:
    to: str
    moved: list[tuple[str, str]] = field(default_factory=list)  # (id, subset before)
    already: list[str] = field(default_factory=list)  # selected but already in `to`
    kept: int = 0  # moved images that are kept (the rest are dropped or failed)
    missing: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    seq: int | None = None  # history entry; None for a dry run or when nothing moved


def move(project: Project, to: str, *, ids: list[str] | None = None, tags: list[str] | None = None,
         from_subset: str | None = None, tag_cfg: TagConfig | None = None, dry_run: bool = False) -> MoveReport:
    """Move the selected images into subset `to`, recording the move for `undo`."""
    ids, tags = list(ids or []), [t for t in (tags or []) if t.strip()]
    check_name(to)
    if from_subset is not None:
        check_name(from_subset, "--from")
    if not ids and not tags and from_subset is None:
        raise KilnError("say which images to move: --id ID, --tag TAG (all given tags) or --from SUBSET")
    cfg = tag_cfg or TagConfig()
    m = project.manifest()
    sel = select(m, ids, tags, from_subset, lambda r: image_tags(r, cfg))
    rep = MoveReport(to, missing=sel.missing, elsewhere=sel.elsewhere)
    for r in sel.chosen:
        if r.subset == to:
            rep.already.append(r.id)
        else:
            rep.moved.append((r.id, r.subset))
            rep.kept += r.kept
    if dry_run or not rep.moved:
        return rep
    rep.seq = max((e["seq"] for e in read_history(history_path(project))), default=0) + 1
    entry = {"seq": rep.seq, "op": "move", "time": _now(), "to": to,
             "args": {"ids": ids, "tags": tags, "from": from_subset},
             "changes": [{"id": rid, "before": before, "after": to} for rid, before in rep.moved]}
    commit(project, m, "kiln subset move", entry, {rid: to for rid, _ in rep.moved})
    return rep


def commit(project: Project, m, what: str, entry: dict[str, Any], subsets: dict[str, str]) -> None:
    """Write a move or an undo to the history and the manifest as one update: the journal
    (core/journal.py) holds it first, so a kill part-way is finished by the next writer."""
    journal.begin(project.root, JOURNAL_KIND, what, {"entry": entry, "subsets": subsets})
    _finish(project, m, entry, subsets)


def finish_pending(project: Project, payload: dict[str, Any]) -> None:
    """Finish a move or undo that a killed process had started (see `commit`)."""
    _finish(project, project.manifest(), dict(payload["entry"]), dict(payload["subsets"]))


def _finish(project: Project, m, entry: dict[str, Any], subsets: dict[str, str]) -> None:
    path = history_path(project)
    if all(e["seq"] != entry["seq"] for e in read_history(path)):
        _append(path, entry)
    for rid, name in subsets.items():
        if rid in m:
            m[rid].subset = name
    m.save()
    journal.clear(project.root)


@dataclass
class UndoReport:
    seq: int
    to: str
    restored: list[tuple[str, str]] = field(default_factory=list)  # (id, subset given back)
    changed_since: list[str] = field(default_factory=list)  # no longer in the move's subset
    gone: list[str] = field(default_factory=list)  # no longer in the manifest


def undo(project: Project) -> UndoReport:
    """Put the images of the newest move not yet undone back where they were."""
    path = history_path(project)
    entries = read_history(path)
    target = last_move(entries)
    if target is None:
        raise KilnError(f"nothing to undo: {path} has no move left to undo")
    m = project.manifest()
    rep = UndoReport(target["seq"], target.get("to", "?"))
    for c in target.get("changes") or []:
        try:
            rid, before, after = c["id"], c["before"], c["after"]
        except (KeyError, TypeError):
            raise ConfigError(path, f"move {target['seq']} has a change without id/before/after: {c!r}") from None
        r = m.get(rid)
        if r is None:
            rep.gone.append(rid)
        elif r.subset != after:
            rep.changed_since.append(rid)
        else:
            rep.restored.append((rid, before))
    entry = {"seq": max(e["seq"] for e in entries) + 1, "op": "undo", "undoes": rep.seq, "time": _now(),
             "restored": [rid for rid, _ in rep.restored]}
    commit(project, m, "kiln subset undo", entry, dict(rep.restored))
    return rep


@dataclass(frozen=True)
class SubsetCount:
    name: str
    kept: int
    total: int


def counts(project: Project) -> list[SubsetCount]:
    """Every subset in the manifest with its kept and total image counts, by name."""
    kept: dict[str, int] = {}
    total: dict[str, int] = {}
    for r in project.manifest():
        total[r.subset] = total.get(r.subset, 0) + 1
        kept[r.subset] = kept.get(r.subset, 0) + r.kept
    return [SubsetCount(n, kept[n], total[n]) for n in sorted(total)]
