"""`kiln config import FILE` and `kiln presets apply NAME`: settings from elsewhere into project.toml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorakiln.config.importers import ImportReport, import_file
from lorakiln.config.presets import all_presets, get_preset
from lorakiln.core.errors import KilnError

from lorakiln.services.plan import base_arch
from lorakiln.services.project import Project


@dataclass
class Applied:
    """What writing values did: each setting with its old and new value.

    For an import the settings are the ones the mapped entries name (one per subset of
    [export].repeats), so the counts add up with the report's mapped list; `removed` are keys
    of a table written whole (repeats) that the import does not have; `shared` says which
    settings several keys of the file mapped onto."""

    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # key, old, new
    written: bool = False
    removed: list[tuple[str, Any]] = field(default_factory=list)  # key, old value
    shared: dict[str, list[str]] = field(default_factory=dict)  # setting -> the source keys that set it

    def summary(self, mapped: int | None = None) -> str:
        """'project.toml: 7 value(s) changed, 4 already so' with what the counts leave out."""
        changed = sum(1 for _, old, new in self.changes if old != new)
        line = f"project.toml: {changed} value(s) changed, {len(self.changes) - changed} already so"
        if self.removed:
            line += f", {len(self.removed)} removed ({', '.join(k for k, _ in self.removed)})"
        if mapped is not None and mapped != len(self.changes):
            detail = "; ".join(f"{k} from {', '.join(srcs)}" for k, srcs in self.shared.items())
            line += f" ({mapped} mapped keys set {len(self.changes)} settings{': ' + detail if detail else ''})"
        return line


def import_config(path: Path, project: Project | None = None, fmt: str | None = None,
                  write: bool = True) -> tuple[ImportReport, Applied]:
    """Read a kohya/Easy Scripts/dataset config; with a project, check it against the project and write it."""
    report = import_file(Path(path), fmt)
    applied = Applied()
    if project is None:
        return report, applied
    _project_notes(report, project)
    _count(report, project, applied)
    if write and report.values:
        project.set_values(report.values)
        applied.written = True
    return report, applied


def _count(report: ImportReport, project: Project, applied: Applied) -> None:
    """Old and new value of every setting the import writes, at the level of the report's entries:
    a table value such as repeats = {a = 5, b = 1} is two settings, as it was two mapped keys."""
    mapped = report.by_status("mapped")
    for path, value in report.values.items():
        dotted = ".".join(path)
        old = project.get_value(path)
        if isinstance(value, dict) and any((e.target or "").startswith(dotted + ".") for e in mapped):
            old = old if isinstance(old, dict) else {}
            applied.changes += [(f"{dotted}.{k}", old.get(k), v) for k, v in value.items()]
            applied.removed += [(f"{dotted}.{k}", v) for k, v in old.items() if k not in value]
        else:
            applied.changes.append((dotted, old, value))
    sources: dict[str, list[str]] = {}
    for e in mapped:
        sources.setdefault(e.target or "", []).append(e.source)
    applied.shared = {k: v for k, v in sources.items() if len(v) > 1}


def _project_notes(report: ImportReport, project: Project) -> None:
    arch = base_arch(project.info.base)
    made_for_xl = any(n.startswith("made for SDXL") for n in report.notes)
    if arch == "sd15" and made_for_xl:
        report.notes.append(f"this config was made for SDXL but the project's base ({project.info.base}) is SD1.5")
    subsets = set(project.manifest().subsets())
    for name in (report.values.get(("export", "repeats")) or {}):
        if subsets and name not in subsets:
            report.notes.append(f"subset {name!r} is not in the manifest (subsets: {', '.join(sorted(subsets))}); "
                                f"import its images with `kiln import FOLDER --subset {name}`")


# -- preset variants ------------------------------------------------------------------
def preset_tables(doc: dict) -> dict[tuple[str, ...], Any]:
    """A preset's settings as project.toml paths (its [preset] table left out)."""
    out: dict[tuple[str, ...], Any] = {}

    def walk(node: dict, prefix: tuple[str, ...]) -> None:
        for k, v in node.items():
            if isinstance(v, dict) and not _is_value_table(prefix + (k,)):
                walk(v, prefix + (k,))
            else:
                out[prefix + (k,)] = v

    walk({k: v for k, v in doc.items() if k != "preset"}, ())
    return out


def _is_value_table(path: tuple[str, ...]) -> bool:
    return path in {("export", "repeats"), ("plan", "weights"), ("train", "network", "network_args")} or \
        path[-1] == "optimizer_args"


def apply_preset(project: Project, name: str, dry_run: bool = False) -> Applied:
    """Write a preset's settings into project.toml: how a variant (DoRA, Prodigy) is chosen."""
    doc = get_preset(name)
    meta = doc.get("preset") or {}
    parent = meta.get("variant_of")
    current = ((project.preset() or {}).get("preset") or {}).get("name")
    if parent and parent != "*" and parent != current:
        raise KilnError(f"preset {meta.get('name', name)!r} is a variant of {parent!r}, but this project's base "
                        f"({project.info.base or 'none'}) uses {current or 'no preset'}")
    values = preset_tables(doc)
    applied = Applied([(".".join(p), project.get_value(p), v) for p, v in values.items()])
    if not dry_run and values:
        project.set_values(values)
        applied.written = True
    return applied


def preset_file_text(name: str) -> str:
    """The bundled file of a preset (by name, alias or base file name), comments included."""
    from importlib import resources

    import tomlkit

    wanted = (get_preset(name).get("preset") or {}).get("name")
    for entry in (resources.files("lorakiln") / "presets").iterdir():
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            meta = tomlkit.parse(text).unwrap().get("preset") or {}
            if meta.get("name", entry.name[:-5]) == wanted:
                return text
    raise KilnError(f"preset {name!r}: its file was not found")


def variants() -> dict[str, str]:
    """Variant preset name -> what it is a variant of ('*' = any base)."""
    return {n: d["preset"]["variant_of"] for n, d in all_presets().items() if (d.get("preset") or {}).get("variant_of")}
