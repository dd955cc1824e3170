"""Training data: subsets (kohya `N_name` folders or a dataset TOML) and their scanned items.

A subset is one image folder with its repeats, caption options and whether it is a
regularisation set; a dataset is a list of subsets sharing bucketing and batch size (kohya's
[[datasets]]). Scanning reads image headers and caption files, never pixels; an unreadable
image or caption is recorded as a problem with its reason and the rest go on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lorakiln.core.errors import ConfigError, ItemError
from lorakiln.core.hashing import sha256_file
from lorakiln.dataset.decode import probe
from lorakiln.dataset.folders import entries, image_files, visible_name  # names reach metadata and JSON: UTF-8 only

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".avif", ".jxl")
_REPEATS = re.compile(r"^(\d+)_(.+)$")


@dataclass
class SubsetSpec:
    name: str  # folder basename, e.g. "10_kafka" (the key of ss_dataset_dirs / ss_tag_frequency)
    image_dir: Path
    num_repeats: int
    options: object  # SubsetOptions (config/train.py), keep_tokens resolved to an int
    is_reg: bool = False
    class_tokens: str | None = None


@dataclass
class DatasetSpec:
    subsets: list[SubsetSpec]
    buckets: object  # BucketConfig
    batch_size: int


@dataclass
class Item:
    path: Path
    caption: str  # raw caption file text (processed per step by caption_proc)
    size: tuple[int, int]
    subset: int  # index into the dataset's subsets
    sha256: str
    bucket: tuple[int, int] | None = None


@dataclass
class ScannedDataset:
    spec: DatasetSpec
    items: list[Item] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[str] = field(default_factory=list)

    def subset_items(self, i: int) -> list[Item]:
        return [it for it in self.items if it.subset == i]


def parse_folder_name(name: str) -> tuple[int, str] | None:
    """'10_kafka hsr' -> (10, 'kafka hsr'); None when there is no repeats prefix."""
    m = _REPEATS.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def _has_images(folder: Path) -> bool:
    return bool(image_files(folder, IMAGE_EXTS))


def folder_subsets(root: Path, options, *, is_reg: bool = False, default_repeats: int = 1,
                   notes: list[str] | None = None) -> list[SubsetSpec]:
    """kohya's folder convention: every `N_name` child is a subset with N repeats.

    A folder with no such children but images of its own is one subset (repeats from its own
    name, else `default_repeats`). Children without a prefix are skipped with a note, as kohya does.
    """
    root = Path(root)
    notes = notes if notes is not None else []
    if not root.is_dir():
        raise ConfigError(root, "training folder does not exist")
    subsets = []
    for child in (p for p in entries(root) if p.is_dir() and not p.name.startswith(".")):
        name = visible_name(child.name)
        parsed = parse_folder_name(name)
        if parsed is None:
            notes.append(f"{child}: skipped, the folder name has no repeats prefix (N_name)")
            continue
        if parsed[0] == 0:
            notes.append(f"{child}: skipped, 0 repeats")
            continue
        subsets.append(SubsetSpec(name, child, parsed[0], options, is_reg, parsed[1]))
    if not subsets and _has_images(root):
        name = visible_name(root.name)
        parsed = parse_folder_name(name)
        reps, cls = parsed if parsed else (default_repeats, name)
        subsets.append(SubsetSpec(name, root, reps, options, is_reg, cls))
    if not subsets:
        raise ConfigError(root, "no images and no N_name subfolders with images (kohya layout: 10_name/img.png + img.txt)")
    return subsets


def subset_key(spec: SubsetSpec) -> str:
    """The name a subset goes by in project.toml: its folder name without the N_ prefix."""
    parsed = parse_folder_name(spec.name)
    return parsed[1] if parsed else spec.name


def apply_overrides(subsets: list[SubsetSpec], overrides: Mapping[str, Any], notes: list[str]) -> None:
    """[train.data.subsets.<name>]: each subset's own options over the shared ones.

    A table naming no subset folder is reported in `notes` (a typo would otherwise change nothing)."""
    used = set()
    for spec in subsets:
        for key in (spec.name, subset_key(spec)):  # "10_back" or "back"
            over = overrides.get(key)
            if over is not None:
                used.add(key)
                spec.options = spec.options.model_copy(update=over.model_dump(exclude_none=True))
                break
    for key in sorted(set(overrides) - used):
        names = ", ".join(sorted({subset_key(s) for s in subsets}))
        notes.append(f"[train.data.subsets.{key}] matches no subset folder (subsets: {names}); not applied")


def _caption_for(image: Path, ext: str, class_tokens: str | None) -> tuple[str, bool]:
    """(caption text, whether a caption file existed); kohya falls back to the class tokens.

    Read as `kiln import` reads it: any encoding with a BOM, UTF-8 or a detected legacy one,
    control characters removed; a folder, pipe, broken link or binary file is an ItemError."""
    from lorakiln.captions.sidecar_text import read_image_caption

    try:
        side = read_image_caption(image, (ext, ".caption") if ext != ".caption" else (ext,))
    except ItemError as e:  # named after the image, so say which file is at fault
        raise ItemError(e.item, f"caption {Path(e.item).name}: {e.problem}") from None
    return (side.text.strip(), True) if side else (class_tokens or "", False)


def scan_subset(spec: SubsetSpec, index: int, out: ScannedDataset) -> None:
    """Add the subset's readable images to `out`; record every unreadable one with its reason."""
    try:
        files = image_files(spec.image_dir, IMAGE_EXTS)
    except ItemError as e:  # a subset folder one may not read is skipped with its reason
        out.problems.append((e.item, e.problem))
        return
    missing = 0
    for path in files:
        try:
            info = probe(path)
            caption, found = _caption_for(path, spec.options.caption_extension, spec.class_tokens)
        except ItemError as e:
            out.problems.append((visible_name(str(path)), e.problem))
            continue
        if info.width < 8 or info.height < 8:
            out.problems.append((visible_name(str(path)), f"image too small ({info.width}x{info.height})"))
            continue
        missing += not found
        out.items.append(Item(path, caption, (info.width, info.height), index, sha256_file(path)))
    if missing:
        out.notes.append(f"{spec.image_dir}: {missing} image(s) without a {spec.options.caption_extension} caption; "
                         f"using the folder's class tokens {spec.class_tokens!r}")
    if not files:
        out.notes.append(f"{spec.image_dir}: no images")


def scan_dataset(spec: DatasetSpec) -> ScannedDataset:
    out = ScannedDataset(spec)
    for i, sub in enumerate(spec.subsets):
        scan_subset(sub, i, out)
    return out
