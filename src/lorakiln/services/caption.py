"""Caption edits on a project: apply a pure op to the kept images, record it, undo it.

An application or an undo changes three files: caption_history.jsonl (the entry or the undo
marker), manifest.jsonl (the captions) and project.toml ([caption].keep_tokens, trigger,
class_tokens, recorded and undone with the captions). `commit` writes the whole intended result
to the project's journal first, so a kill part-way is finished by the next kiln command that
writes the project (services/recovery.py), never left half-done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping, Sequence

from lorakiln.captions import ops
from lorakiln.captions.features import CoreSuggestion, bundled_features, suggest_core
from lorakiln.captions.freq import TagCount, tag_frequency
from lorakiln.captions.history import (
    HISTORY_FILE, Change, ConfigChange, Entry, History, active, now, restore_plan, undo_targets,
)
from lorakiln.captions.model import format_caption, normalize_tags, parse_caption, tag_key, verbatim_map
from lorakiln.captions.order import (
    VERBATIM_TAGS, OrderOptions, TagFacts, normalize_rating, order_tags, score_percentiles, year_of,
)
from lorakiln.config.caption import CaptionConfig
from lorakiln.core import journal
from lorakiln.core.errors import KilnError
from lorakiln.core.manifest import Manifest
from lorakiln.core.progress import NullProgress, Progress
from lorakiln.core.records import ImageRecord
from lorakiln.services.project import REMOVE, Project

JOURNAL_KIND = "caption"

EXAMPLES = 3


@dataclass(frozen=True)
class Selection:
    """Which kept images an op touches: a subset and/or explicit ids (default: all kept)."""

    subset: str | None = None
    ids: tuple[str, ...] = ()


@dataclass
class OpResult:
    op: str
    selected: int
    edited: int  # captions whose tags changed
    initialised: int  # captions created from the image's tags by this op
    seq: int | None = None  # history entry; None when nothing was written (dry run, no change)
    examples: list[Change] = field(default_factory=list)
    config: list[ConfigChange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- where captions come from ------------------------------------------------------------
class TagView:
    """The tagging stage's view of a record ([tag] resolved once): first tags, categories, scores."""

    def __init__(self, project: Project):
        from lorakiln.tagging import merge

        self._merge = merge
        self._cfg = project.resolve("tag")

    def initial(self, r: ImageRecord) -> list[str]:
        """An image's first caption: the merged booru + tagger tags, canonical, without repeats."""
        opts = (r.extra.get("fetch") or {}).get("caption") or {}
        tags = [*opts.get("prepend", ()), *self._merge.initial_tags(r, self._cfg), *opts.get("append", ())]
        return normalize_tags(tags)

    def categories(self, r: ImageRecord) -> dict[str, str]:
        return {tag_key(t): c for t, c in self._merge.tag_categories(r, self._cfg).items()}

    def scores(self, r: ImageRecord) -> dict[str, float]:
        return {tag_key(t): s for t, s in self._merge.tag_scores(r, self._cfg).items()}

    def rating(self, r: ImageRecord) -> str | None:
        """g/s/q/e from the post, else from the tagger's most likely rating."""
        return normalize_rating(r.rating, r.source) or normalize_rating(self._merge.tagger_rating(r))

    def current(self, r: ImageRecord) -> list[str]:
        return list(r.caption) if r.caption is not None else self.initial(r)


def caption_text(tags: Sequence[str], cfg: CaptionConfig, trigger: Sequence[str]) -> str:
    """The caption as written to a file, with the project's conventions."""
    return format_caption(
        tags, underscores=cfg.underscores, escape_parens=cfg.escape, separator=cfg.separator,
        verbatim=verbatim_map([*VERBATIM_TAGS, *trigger, *cfg.class_tokens]),
    )


# -- the session ----------------------------------------------------------------------------
class Captions:
    """One command's view of the project: resolved [caption], manifest, history."""

    def __init__(self, project: Project, cli: Mapping[str, Any] | None = None, progress: Progress | None = None):
        self.project = project
        self.cfg: CaptionConfig = project.resolve("caption", cli)
        self.manifest: Manifest = project.manifest()
        self.history = History(project.root / HISTORY_FILE)
        self.progress = progress or NullProgress()

    @cached_property
    def tags(self) -> TagView:
        return TagView(self.project)

    @property
    def trigger(self) -> list[str]:
        return list(self.cfg.trigger or self.project.info.trigger)

    def keep_first(self) -> tuple[str, ...]:
        return tuple([*self.trigger, *self.cfg.class_tokens])

    def selected(self, sel: Selection) -> list[ImageRecord]:
        for rid in sel.ids:
            if rid not in self.manifest:
                raise KilnError(f"{self.project.manifest_path}: no image with id {rid!r}")
        ids = set(sel.ids)
        return [r for r in self.manifest.kept(sel.subset) if not ids or r.id in ids]

    def current(self, r: ImageRecord) -> list[str]:
        return self.tags.current(r)

    def text(self, tags: Sequence[str]) -> str:
        return caption_text(tags, self.cfg, self.trigger)

    @cached_property
    def all_categories(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for r in self.manifest.kept():
            for k, c in self.tags.categories(r).items():
                out.setdefault(k, c)
        return out

    # -- applying ------------------------------------------------------------------------
    def apply(
        self, op: str, args: dict, fn: Callable[[ImageRecord, list[str]], list[str]], sel: Selection,
        dry_run: bool = False, config: Mapping[str, Any] | None = None,
    ) -> OpResult:
        """Run `fn` over the selected images; record and save the changes unless `dry_run`."""
        records = self.selected(sel)
        changes, edited, initialised = [], 0, 0
        examples: list[Change] = []
        with self.progress.task(f"caption {op}", total=len(records)) as task:
            for r in records:
                cur = self.current(r)
                after = fn(r, list(cur))
                edited += after != cur
                initialised += r.caption is None
                if after != r.caption:
                    changes.append(Change(r.id, r.caption, after))
                if after != cur and len(examples) < EXAMPLES:
                    examples.append(Change(r.id, cur, after))
                task.advance(1)
        cfg_changes = self._config_changes(config or {})
        res = OpResult(op, len(records), edited, initialised, examples=examples, config=cfg_changes)
        if dry_run or not (changes or cfg_changes):
            return res
        entry = Entry(self.history.next_seq(), op, now(), args, changes, cfg_changes)
        commit(self.project, self.manifest, self.history, f"kiln caption {op}", entry,
               {c.id: c.after for c in changes}, [(c.section, c.key, c.after, True) for c in cfg_changes])
        res.seq = entry.seq
        return res

    def _config_changes(self, values: Mapping[str, Any]) -> list[ConfigChange]:
        out = []
        table = self.project.section_doc("caption")
        for key, value in values.items():
            had = key in table
            if not had or table[key] != value:
                out.append(ConfigChange("caption", key, table.get(key), value, had))
        return out

    # -- undo ----------------------------------------------------------------------------
    def undo(self, n: int = 1) -> tuple[list[Entry], int, int]:
        """Undo the `n` latest applications: (entries undone, images restored, images changed since)."""
        targets = undo_targets(self.history.entries(), n)
        captions, config = restore_plan(targets)
        latest_after = {c.id: c.after for e in reversed(targets) for c in e.changes}
        present = {rid: before for rid, before in captions.items() if rid in self.manifest}
        drifted = sum(self.manifest[rid].caption != latest_after[rid] for rid in present)
        marker = Entry(self.history.next_seq(), "undo", now(), undoes=[e.seq for e in targets])
        commit(self.project, self.manifest, self.history, "kiln caption undo", marker, present,
               [(c.section, c.key, c.before, c.had_before) for c in config.values()])
        return targets, len(present), drifted

    def log(self) -> tuple[list[Entry], set[int]]:
        """All applications (oldest first) and the seqs that are undone."""
        entries = self.history.entries()
        act = {e.seq for e in active(entries)}
        apps = [e for e in entries if e.op != "undo"]
        return apps, {e.seq for e in apps if e.seq not in act}


# -- committing: manifest, history and project.toml as one update --------------------------
def commit(project: Project, manifest: Manifest, history: History, what: str, entry: Entry,
           captions: Mapping[str, list[str] | None], config: Sequence[tuple[str, str, Any, bool]]) -> None:
    """Write a caption edit to its three files; a kill anywhere in it is finished by the next writer.

    The journal (core/journal.py) holds the whole result first; each step below is idempotent."""
    journal.begin(project.root, JOURNAL_KIND, what, {
        "entry": json.loads(entry.to_json()), "captions": dict(captions), "config": [list(c) for c in config]})
    _finish(project, manifest, history, entry, captions, config)


def finish_pending(project: Project, payload: Mapping[str, Any]) -> None:
    """Finish a caption edit that a killed process had started (see `commit`)."""
    entry = Entry.from_json(payload["entry"])
    config = [(str(s), str(k), v, bool(present)) for s, k, v, present in payload["config"]]
    _finish(project, project.manifest(), History(project.root / HISTORY_FILE), entry, payload["captions"], config)


def _finish(project: Project, manifest: Manifest, history: History, entry: Entry,
            captions: Mapping[str, list[str] | None], config: Sequence[tuple[str, str, Any, bool]]) -> None:
    if all(e.seq != entry.seq for e in history.entries()):
        history.append(entry)
    for rid, tags in captions.items():
        if rid in manifest:
            manifest[rid].caption = tags
    manifest.save()
    if config:
        project.set_values({(s, k): (v if present else REMOVE) for s, k, v, present in config})
    journal.clear(project.root)


# -- operations (each a thin wrapper around a pure function) -----------------------------
def trigger(c: Captions, words: Sequence[str] = (), class_tokens: Sequence[str] | None = None,
            sel: Selection = Selection(), dry_run: bool = False) -> OpResult:
    words = [w.strip() for x in words for w in x.split(",") if w.strip()] or c.trigger
    classes = list(c.cfg.class_tokens if class_tokens is None else class_tokens)
    first = [*words, *classes]
    keep = len(normalize_tags(first))
    config: dict[str, Any] = {"keep_tokens": keep}
    if words != list(c.project.info.trigger) or c.cfg.trigger is not None:
        config["trigger"] = list(words)
    if class_tokens is not None or c.cfg.class_tokens:
        config["class_tokens"] = classes
    args = {"words": list(words), "class_tokens": classes, "keep_tokens": keep}
    return c.apply("trigger", args, lambda r, t: ops.put_first(t, first), sel, dry_run, config)


def remove(c: Captions, tags: Sequence[str] = (), globs: Sequence[str] = (), regexes: Sequence[str] = (),
           categories: Sequence[str] = (), presets: Sequence[str] = (), sel: Selection = Selection(),
           dry_run: bool = False) -> OpResult:
    m = ops.build_matcher(tags, globs, regexes, categories, presets)
    args = {k: list(v) for k, v in dict(tags=tags, globs=globs, regexes=regexes, categories=categories,
                                         presets=presets).items() if v}
    protect = {tag_key(t) for t in c.keep_first()} - m.exact  # patterns never take the trigger; a name does

    def fn(r: ImageRecord, t: list[str]) -> list[str]:
        cats = c.tags.categories(r) if categories else {}
        return [x for x in t if tag_key(x) in protect or not m(x, cats.get(tag_key(x)))]

    return c.apply("remove", args, fn, sel, dry_run)


def core_suggestions(c: Captions, sel: Selection = Selection(), threshold: float | None = None,
                     groups: Sequence[str] | None = None) -> list[CoreSuggestion]:
    """Tags by frequency with fixed-feature tags marked (the trigger words are left out)."""
    protect = {tag_key(t) for t in c.keep_first()}
    counts = [tc for tc in frequency(c, sel) if tag_key(tc.tag) not in protect]
    return suggest_core(counts, c.all_categories, bundled_features(),
                        c.cfg.core_threshold if threshold is None else threshold,
                        groups if groups else c.cfg.core_groups)


def prune_core(c: Captions, tags: Sequence[str] = (), sel: Selection = Selection(), threshold: float | None = None,
               groups: Sequence[str] | None = None, dry_run: bool = False) -> OpResult:
    """Remove the named tags, or without names every tag `core_suggestions` marks."""
    if tags:
        chosen = normalize_tags(tags)
    else:
        chosen = [s.tag for s in core_suggestions(c, sel, threshold, groups) if s.core]
    if not chosen:
        res = OpResult("prune-core", len(c.selected(sel)), 0, 0)
        res.notes.append("no fixed-feature tag reaches the threshold; nothing pruned")
        return res
    keys = {tag_key(t) for t in chosen}
    args = {"tags": chosen, "feature_list_version": bundled_features().version}
    return c.apply("prune-core", args, lambda r, t: [x for x in t if tag_key(x) not in keys], sel, dry_run)


def consolidate(c: Captions, tags: Sequence[str], into: str, mode: str = "any", sel: Selection = Selection(),
                dry_run: bool = False) -> OpResult:
    if not tags or not into.strip():
        raise KilnError("consolidate needs the tags to replace and --into NEW")
    group = normalize_tags(tags)
    args = {"tags": group, "into": normalize_tags([into])[0], "mode": mode}
    return c.apply("consolidate", args, lambda r, t: ops.consolidate(t, group, into, mode), sel, dry_run)  # type: ignore[arg-type]


def replace(c: Captions, old: str, new: str, sel: Selection = Selection(), dry_run: bool = False) -> OpResult:
    if not old.strip() or not new.strip():
        raise KilnError("replace needs OLD and NEW tags")
    return c.apply("replace", {"old": old, "new": new}, lambda r, t: ops.replace_tag(t, old, new), sel, dry_run)


def overlap(c: Captions, exceptions: Sequence[str] = (), sel: Selection = Selection(), dry_run: bool = False) -> OpResult:
    keep = [*c.cfg.overlap_exceptions, *exceptions, *c.keep_first()]
    return c.apply("overlap", {"exceptions": list(exceptions)}, lambda r, t: ops.drop_overlap(t, keep), sel, dry_run)


def reset(c: Captions, sel: Selection = Selection(), dry_run: bool = False) -> OpResult:
    """Captions back to the image's tags as the tagging stage gives them now."""
    return c.apply("reset", {}, lambda r, t: c.tags.initial(r), sel, dry_run)


def set_caption(c: Captions, rid: str, text: str) -> OpResult:
    r = c.manifest.get(rid)
    if r is None:
        raise KilnError(f"{c.project.manifest_path}: no image with id {rid!r}")
    if not r.kept:
        raise KilnError(f"{rid} is {r.status.value} ({r.reason}); only kept images' captions are edited")
    tags = parse_caption(text, c.cfg.separator)
    return c.apply("set", {"id": rid, "caption": text}, lambda r, t: tags, Selection(ids=(rid,)))


def order(c: Captions, style: str | None = None, sel: Selection = Selection(), dry_run: bool = False,
          **flags: bool | None) -> OpResult:
    """Order every selected caption by a style; keep_tokens becomes the longest fixed head."""
    style = style or c.cfg.order
    opts = _order_options(c, flags)
    pct = score_percentiles({r.id: r.score for r in c.manifest.kept()})
    heads: list[int] = []

    def fn(r: ImageRecord, t: list[str]) -> list[str]:
        tags, head = order_tags(t, style, _facts(c, r, pct.get(r.id)), opts)
        heads.append(head)
        return tags

    records = c.selected(sel)
    probe = [fn(r, c.current(r)) for r in records]  # the heads decide keep_tokens before writing
    keep = max(heads, default=0)
    if sel != Selection():
        keep = max(keep, c.cfg.keep_tokens)
    results = dict(zip((r.id for r in records), probe))
    args = {"style": style, "special": _special_kinds(style, opts), "keep_tokens": keep}
    if style == "e621":
        args["category_order"] = list(opts.category_order)
    return c.apply("order", args, lambda r, t: results[r.id], sel, dry_run, {"keep_tokens": keep})


def _order_options(c: Captions, flags: Mapping[str, bool | None]) -> OrderOptions:
    cfg = c.cfg
    pick = {k: (v if v is not None else getattr(cfg, k)) for k, v in flags.items()}
    base = {k: getattr(cfg, k) for k in ("quality_tags", "rating_tags", "year_tags", "aesthetic_tags", "score_tags")}
    base.update(pick)
    return OrderOptions(keep_first=c.keep_first(), source_tag=cfg.source_tag,
                        category_order=tuple(cfg.category_order), **base)


_SPECIAL_BY_STYLE = {
    "animagine": ("quality_tags", "rating_tags", "year_tags", "aesthetic_tags"),
    "pony": ("score_tags", "rating_tags"),
    "e621": ("rating_tags",),
}


def _special_kinds(style: str, opts: OrderOptions) -> list[str]:
    """The special tags this ordering adds, for the history ('quality', 'rating', ...)."""
    kinds = [k[: -len("_tags")] for k in _SPECIAL_BY_STYLE.get(style, ()) if getattr(opts, k)]
    if style == "pony" and opts.source_tag != "none":
        kinds.append(f"source={opts.source_tag}")
    return kinds


def _facts(c: Captions, r: ImageRecord, percentile: float | None) -> TagFacts:
    aesthetic = r.extra.get("aesthetic")
    return TagFacts(
        categories=c.tags.categories(r), scores=c.tags.scores(r), rating=c.tags.rating(r),
        year=year_of(r.created_at), percentile=percentile,
        aesthetic=float(aesthetic) if isinstance(aesthetic, (int, float)) else None, site=r.source,
    )


def frequency(c: Captions, sel: Selection = Selection()) -> list[TagCount]:
    return tag_frequency(c.current(r) for r in c.selected(sel))


def show(c: Captions, rid: str) -> tuple[ImageRecord, list[str], str]:
    r = c.manifest.get(rid)
    if r is None:
        raise KilnError(f"{c.project.manifest_path}: no image with id {rid!r}")
    tags = c.current(r)
    return r, tags, c.text(tags)


def selection(subset: str | None = None, ids: Iterable[str] = ()) -> Selection:
    return Selection(subset, tuple(ids))
