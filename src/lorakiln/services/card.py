"""kiln card: gather a run's (or a plain LoRA's) facts and write card.md + info.txt.

Sources, each optional: the LoRA's metadata (tags, dataset folders, network), the project
(triggers, base, caption history: outfit consolidations and pruned core tags),
runs/<run>/config.resolved.toml ([train] settings that differ from the defaults, plus the
essentials), runs/<run>/eval/summary.json ("recommended": checkpoint, weight, reason; "findings"
measured on that pick) and a grid PNG under runs/<run>/eval/.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from lorakiln.core.atomic import write_text
from lorakiln.core.errors import KilnError, ProjectNotFound
from lorakiln.formats.lora_file import autov2, read_lora, tensor_hash
from lorakiln.formats.lora_model import parse_lora
from lorakiln.merge.arch import detect_arch
from lorakiln.merge.card import (
    CardData,
    finding_messages,
    guess_triggers,
    reinforcement_tags,
    render_info_txt,
    render_markdown,
    settings_that_matter,
)
from lorakiln.merge.compat import loader_report, loaders_line
from lorakiln.merge.info import TRAINING_KEYS, dataset_dirs, tag_frequency
from lorakiln.merge.metadata import read_provenance

_NUMBERED = re.compile(r"-(\d{6}|step\d{8})\.safetensors$")
_SECRET = re.compile(r"(api_?key|token|password|secret|credential)", re.I)


def _open_project(where: Path | None):
    from lorakiln.services.project import open_project

    try:
        return open_project(where)
    except ProjectNotFound:
        return None


def _run_dir(project, run: str | None) -> Path:
    if project is None:
        raise KilnError("no project here: pass --project DIR, or make a card for a file with --lora FILE")
    runs = project.runs_dir
    if run:
        for cand in (Path(run), runs / run):
            if cand.is_dir():
                return cand
        raise KilnError(f"no run {run!r} in {runs}")
    found = sorted(p for p in runs.iterdir() if p.is_dir() and any(p.glob("*.safetensors"))) if runs.is_dir() else []
    if not found:
        raise KilnError(f"no run with a LoRA file in {runs}; train first, or use --lora FILE")
    return found[-1]


def _eval_json(run_dir: Path | None, name: str) -> dict[str, Any] | None:
    p = run_dir / "eval" / name if run_dir else None
    if not p or not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise KilnError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise KilnError(f"{p}: not a JSON object")
    return doc


def _recommended(run_dir: Path | None) -> dict[str, Any] | None:
    doc = _eval_json(run_dir, "summary.json")
    rec = doc.get("recommended") if doc else None
    return rec if isinstance(rec, dict) else None


def _findings(run_dir: Path | None) -> list[str]:
    """The evaluation's findings for the recommended pick: summary.json "findings" (metrics.json
    as a fallback, should it ever carry them)."""
    for name in ("summary.json", "metrics.json"):
        doc = _eval_json(run_dir, name)
        if doc and doc.get("findings"):
            return finding_messages(doc["findings"])
    return []


def _pick_lora(run_dir: Path, rec: dict | None) -> Path:
    if rec and rec.get("checkpoint") and (run_dir / Path(str(rec["checkpoint"])).name).is_file():
        return run_dir / Path(str(rec["checkpoint"])).name
    files = sorted(run_dir.glob("*.safetensors"))
    final = [f for f in files if not _NUMBERED.search(f.name)]
    return (final or files)[-1]


def _grid(run_dir: Path | None, out_dir: Path) -> str | None:
    pngs = sorted((run_dir / "eval").rglob("*.png")) if run_dir and (run_dir / "eval").is_dir() else []
    if not pngs:
        return None
    best = next((p for p in pngs if "grid" in p.name.lower()), pngs[0])
    return Path(os.path.relpath(best, out_dir)).as_posix()


def _settings(run_dir: Path | None, meta: dict[str, str]) -> tuple[dict[str, Any], bool]:
    """(settings, trimmed): the run's [train] keys that matter (see settings_that_matter), else
    the ss_* training keys of the LoRA's metadata as they are."""
    cfg_path = run_dir / "config.resolved.toml" if run_dir else None
    if cfg_path and cfg_path.is_file():
        import tomlkit

        from lorakiln.config.train import TrainConfig

        doc = tomlkit.parse(cfg_path.read_text(encoding="utf-8")).unwrap()
        train = doc.get("train") if isinstance(doc.get("train"), dict) else {}
        values: dict[str, Any] = {}
        _flatten(train, "", values)
        project_base = (doc.get("project") or {}).get("base") if isinstance(doc.get("project"), dict) else None
        if values.get("base") is None and project_base:
            values = {"base": project_base, **values}
        defaults: dict[str, Any] = {}
        _flatten(TrainConfig().model_dump(mode="json"), "", defaults)
        return settings_that_matter(values, {k: v for k, v in defaults.items() if v is not None}), True
    return {k.removeprefix("ss_"): v for k, v in meta.items() if k in TRAINING_KEYS}, False


def _flatten(d: dict, prefix: str, out: dict[str, Any]) -> None:
    for k, v in d.items():
        if _SECRET.search(k):
            continue
        if isinstance(v, dict):
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v


def _history(project) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(outfit consolidations, pruned core tags) still in effect in the caption history."""
    if project is None:
        return [], []
    from lorakiln.captions.history import HISTORY_FILE, History, active, consolidations

    entries = History(project.root / HISTORY_FILE).entries()
    outfits = [(into, tags) for tags, into in consolidations(entries) if into]
    core = [t for e in active(entries) if e.op == "prune-core" for t in e.args.get("tags", [])]
    return outfits, list(dict.fromkeys(core))


def _network(meta: dict[str, str], model) -> dict[str, Any]:
    from lorakiln.formats.meta_json import decode_dict

    args = decode_dict(meta.get("ss_network_args"))  # unreadable (bad or too deeply nested JSON): {}
    algo = args.get("algo") or sorted(model.algos())[0]
    ranks = [m.rank for m in model.modules.values() if m.rank]
    return {"algo": "LoRA" if algo == "lora" else algo, "dim": meta.get("ss_network_dim") or (max(ranks) if ranks else "?"),
            "alpha": meta.get("ss_network_alpha") or "?"}


def build_card(lora: Path, project=None, run_dir: Path | None = None, out_dir: Path | None = None,
               top: int = 30) -> CardData:
    tensors, meta = read_lora(lora)
    model = parse_lora(tensors, lora.name)
    freq = tag_frequency(meta)
    dirs = dataset_dirs(meta)
    outfits, core = _history(project)
    triggers = list(project.info.trigger) if project else \
        [t.strip() for t in meta.get("modelspec.trigger_phrase", "").split(",") if t.strip()]
    guessed = False
    if not triggers:
        triggers, guessed = guess_triggers(freq, sum(int(d.get("img_count", 0)) for d in dirs.values())), True
    exclude = set(triggers) | {o for o, _ in outfits} | {t for _, tags in outfits for t in tags} | set(core)
    if project is not None:  # character, copyright, artist and meta tags are not reinforcement tags
        from lorakiln.evaluate.dataset_tags import non_prompt_tags

        exclude |= non_prompt_tags(project.manifest())
    rec = _recommended(run_dir)
    settings, trimmed = _settings(run_dir, meta)
    v3 = tensor_hash(lora)
    return CardData(
        title=meta.get("ss_output_name") or lora.stem, lora_file=lora.name, arch=detect_arch(model, meta),
        base_model=meta.get("ss_sd_model_name") or (project.info.base if project else None),
        triggers=triggers, triggers_guessed=guessed, outfits=outfits, core_tags=core,
        reinforcement=reinforcement_tags(freq, exclude), recommended=rec,
        subsets=[{"name": k, "images": int(v.get("img_count", 0)), "repeats": int(v.get("n_repeats", 1))}
                 for k, v in dirs.items()],
        tag_frequency=freq.most_common(top), network=_network(meta, model), settings=settings,
        settings_trimmed=trimmed, findings=_findings(run_dir),
        hashes={"AutoV3 (A1111 / Civitai)": v3[:12], "AutoV2": autov2(lora), "SHA256 of tensors": v3},
        grid=_grid(run_dir, out_dir or lora.parent), provenance=read_provenance(meta),
        loaders=loaders_line(loader_report(model)),
    )


def make_card(project_dir: Path | None = None, *, run: str | None = None, lora: Path | None = None,
              out_dir: Path | None = None, top: int = 30) -> list[Path]:
    """Write card.md and info.txt; returns their paths."""
    project = _open_project(project_dir)
    if lora is not None:
        lora = Path(lora)
        run_dir = None
        if run:
            run_dir = _run_dir(project, run)
        target = Path(out_dir) if out_dir else lora.parent
        names = ("card.md", "info.txt") if out_dir else (f"{lora.stem}.card.md", f"{lora.stem}.info.txt")
    else:
        run_dir = _run_dir(project, run)
        lora = _pick_lora(run_dir, _recommended(run_dir))
        target = Path(out_dir) if out_dir else run_dir
        names = ("card.md", "info.txt")
    card = build_card(lora, project, run_dir, target, top)
    paths = [target / names[0], target / names[1]]
    write_text(paths[0], render_markdown(card))
    write_text(paths[1], render_info_txt(card))
    return paths
