"""`kiln plan` on a project (or a folder): counts in, plan out, values written to project.toml.

What the plan writes: [export].repeats, [train].max_train_epochs and, with a strength,
[train.optimizer].unet_lr / text_encoder_lr. plan.json in the project remembers what it wrote
last, so a later plan updates its own values but keeps a value you edited by hand (unless
--force), and says which.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lorakiln.config.plan import PlanConfig
from lorakiln.config.bases import families
from lorakiln.config.presets import find_preset
from lorakiln.config.sections import sections
from lorakiln.core.atomic import write_json
from lorakiln.core.errors import KilnError
from lorakiln.dataset.folders import entries, image_files
from lorakiln.planning.plan import Plan, PlanInputs, make_plan
from lorakiln.planning.views import BACK, ViewCap

from lorakiln.services.project import Project

PLAN_FILE = "plan.json"
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".avif", ".jxl"}
REPEATS_DIR = re.compile(r"^(\d+)_(.+)$")


@dataclass
class Change:
    path: tuple[str, ...]
    old: Any
    new: Any
    status: str  # "set", "unchanged", "kept"

    @property
    def key(self) -> str:
        return ".".join(self.path)


@dataclass
class PlanOutcome:
    plan: Plan
    changes: list[Change] = field(default_factory=list)
    written: bool = False
    renames: list[tuple[str, str]] = field(default_factory=list)  # folder mode: old -> new folder name


# -- inputs ------------------------------------------------------------------------
def _counts(items) -> dict[str, int]:
    """Kept images per subset, from the items already read (one pass over the manifest, not two)."""
    counts: dict[str, int] = {}
    for it in items:
        counts[it.subset] = counts.get(it.subset, 0) + 1
    return counts


def folder_counts(folder: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Images per subset of a kohya folder (N_name subfolders) or of one plain image folder.

    Returns (counts by subset name, folder name by subset name).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise KilnError(f"{folder}: not a folder")
    counts: dict[str, int] = {}
    dirs: dict[str, str] = {}
    for sub in (p for p in entries(folder) if p.is_dir()):  # unreadable: an ItemError naming it
        m = REPEATS_DIR.match(sub.name)
        n = _count_images(sub)
        if m and n:
            name = m.group(2)
            counts[name] = counts.get(name, 0) + n
            dirs[name] = sub.name
    if not counts:
        n = _count_images(folder)
        if not n:
            raise KilnError(f"{folder}: no images and no N_name subfolders with images")
        counts[folder.name] = n
        dirs[folder.name] = folder.name
    return counts, dirs


def _count_images(folder: Path) -> int:
    return len(image_files(folder, IMAGE_EXTS))


def base_arch(base: str | None, override: str | None = None) -> str | None:
    """sd15 or sdxl: the override, else the family of the base model's preset, else None."""
    if override:
        return override
    family = ((find_preset(base) or {}).get("preset") or {}).get("family")
    if not family and base in families():  # `--base sdxl` names the family itself
        family = base
    if not family and base and Path(base).expanduser().exists():  # a model file or folder: from its keys
        from lorakiln.core.errors import KilnError
        from lorakiln.train.families.loading import detect_family

        try:
            family = detect_family(str(Path(base).expanduser()))
        except KilnError:
            return None
    if not family:
        return None
    return "sdxl" if family.endswith("sdxl") else "sd15"


def view_cap(items, limit: float | None) -> ViewCap | None:
    """Back views per subset (tags as `kiln doctor` reads them) and doctor's limit; None without a limit."""
    if limit is None:
        return None
    back: dict[str, int] = {}
    for it in items:
        if it.has_any(BACK):
            back[it.subset] = back.get(it.subset, 0) + 1
    return ViewCap(back, limit)


def _doctor_limit(project: Project) -> float | None:
    """[doctor].max_back_share, unless the user switched the views check off."""
    doc = project.resolve("doctor")
    return None if "views" in doc.skip else doc.max_back_share


def _arch_or_fail(arch: str | None, base: str | None) -> str:
    if arch is None:
        raise KilnError(f"cannot tell whether base {base or '(none)'} is SD1.5 or SDXL: pass --family sd15|sdxl "
                        "or set [plan].family in project.toml")
    return arch


# -- the plan ------------------------------------------------------------------------
def plan_project(project: Project, cli: Mapping[str, Any] | None = None, *, batch_size: int | None = None,
                 dry_run: bool = False, force: bool = False, items=None) -> PlanOutcome:
    """Plan from the manifest's kept images and write the numbers into project.toml.

    `items`: the kept images as `kiln doctor` sees them, when the caller has them already."""
    from lorakiln.services.doctor import project_items

    cfg: PlanConfig = project.resolve("plan", cli)
    train = project.resolve("train")
    arch = _arch_or_fail(base_arch(train.base or project.info.base, cfg.family), train.base or project.info.base)
    items = project_items(project) if items is None else items
    inputs = PlanInputs(_counts(items), arch, batch_size or train.train_batch_size,
                        train.optimizer.optimizer, view_cap(items, _doctor_limit(project)), plan_sources(project, cli))
    plan = make_plan(inputs, cfg)
    changes = _changes(project, plan, force, batch_size is not None)
    kept = next((c for c in changes if c.key == "train.max_train_epochs" and c.status == "kept"), None)
    if kept is not None and isinstance(kept.old, int) and kept.old >= 1:
        # training will run the hand-edited epochs: steps and seed 003's L = S / (R x E x I) must use them
        inputs.sources["epochs"] = "train.max_train_epochs in project.toml (changed since the last plan)"
        plan = make_plan(inputs, cfg.model_copy(update={"epochs": kept.old}))
        plan.notes.append(f"train.max_train_epochs = {kept.old} was edited by hand and is kept: steps and "
                          f"learning rate use it (the table says {kept.new}; --force writes that instead)")
        changes = [kept if c.key == kept.key else c for c in _changes(project, plan, force, batch_size is not None)]
    outcome = PlanOutcome(plan, changes)
    plan.notes += _overridden(changes)
    if not dry_run:
        todo = {c.path: c.new for c in outcome.changes if c.status == "set"}
        if todo:
            project.set_values(todo)
        _remember(project, plan, outcome.changes)
        outcome.written = True
    return outcome


def plan_sources(project: Project | None, cli: Mapping[str, Any] | None) -> dict[str, str]:
    """Where each [plan] value came from, resolved as `kiln config show` resolves it, plus the command line."""
    out: dict[str, str] = {}
    if project is not None:
        from lorakiln.services.config_show import show_section

        preset = ((project.preset().get("preset") or {}).get("name")) or "of the base model"
        names = {"preset": f"preset {preset}", "project.toml": f"project.toml ({project.config_path})"}
        for key, _value, source in show_section(project, "plan"):
            field = key.split(".")[0]
            if source == "env":
                out[field] = f"the environment (KILN_PLAN__{field.upper()})"
            elif source in names:
                out[field] = names[source]
    out.update({k: "the command line" for k, v in (cli or {}).items() if v is not None})
    return out


def plan_folder(folder: Path, cfg: PlanConfig, *, arch: str | None, batch_size: int,
                optimizer: str | None = None, base: str | None = None, back_limit: float | None = None,
                sources: Mapping[str, str] | None = None) -> PlanOutcome:
    """Plan for a kohya folder (no project): the result is printed, folders are never renamed.

    `back_limit`: doctor's limit on the back-view share (default: [doctor]'s default)."""
    from lorakiln.config.doctor import DoctorConfig
    from lorakiln.services.doctor import folder_items

    counts, dirs = folder_counts(folder)
    limit = DoctorConfig().max_back_share if back_limit is None else back_limit
    views = view_cap(folder_items(Path(folder))[0], limit)
    plan = make_plan(PlanInputs(counts, _arch_or_fail(arch, base), batch_size, optimizer, views, dict(sources or {})), cfg)
    renames = [(dirs[s], f"{r}_{s}") for s, r in plan.repeats.items() if dirs[s] != f"{r}_{s}"]
    return PlanOutcome(plan, renames=renames)


def _targets(project: Project, plan: Plan, batch_given: bool) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {("export", "repeats"): dict(plan.repeats),
                                       ("train", "max_train_epochs"): plan.epochs}
    if batch_given:  # the steps above assume it: training must use it too
        out[("train", "train_batch_size")] = plan.batch_size
    if plan.unet_lr is not None:
        out[("train", "optimizer", "unet_lr")] = plan.unet_lr
        te_now = project.resolve("train").optimizer.text_encoder_lr
        if te_now == 0:
            plan.notes.append("text encoder frozen (text_encoder_lr = 0): left frozen")
        else:
            out[("train", "optimizer", "text_encoder_lr")] = plan.text_encoder_lr
    return out


def _changes(project: Project, plan: Plan, force: bool, batch_given: bool) -> list[Change]:
    last = _last_written(project)
    changes = []
    for path, new in _targets(project, plan, batch_given).items():
        old = project.get_value(path)
        if old == new:
            status = "unchanged"
        elif old is None or force or old == last.get(".".join(path)):
            status = "set"
        else:
            status = "kept"
        changes.append(Change(path, old, new, status))
    return changes


def _overridden(changes: list[Change]) -> list[str]:
    """Values the plan writes into project.toml that a KILN_* variable overrides when training runs."""
    from lorakiln.config.resolve import env_variables

    notes = []
    for c in changes:
        for var, (path, _value) in env_variables(c.path[0]).items():
            if c.path[1:len(path) + 1] == path[:len(c.path) - 1]:
                notes.append(f"{var} is set: it overrides {c.key} from project.toml, so training will not use "
                             "the planned value (unset it to use the plan)")
    return notes


def _last_written(project: Project) -> dict[str, Any]:
    p = project.root / PLAN_FILE
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("written") or {}
    except (json.JSONDecodeError, OSError, AttributeError):
        return {}  # a damaged record only means hand edits are not told apart: values are kept


def _remember(project: Project, plan: Plan, changes: list[Change]) -> None:
    written = _last_written(project)
    for c in changes:
        if c.status in ("set", "unchanged"):
            written[c.key] = c.new
    write_json(project.root / PLAN_FILE, {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "plan": plan.summary(), "written": written,
        "explanation": [s.line() for s in plan.lines], "notes": plan.notes,
    })


def default_batch_size() -> int:
    return sections()["train"]().train_batch_size
