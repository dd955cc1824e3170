"""Benchmark: the seeds' disputed LoRA-training recipes, run in the toy world, with intervals.

Each recipe has two arms that differ in one thing: A, the baseline practice, and B, what a seed
did (seed 000: an OC trained on Animagine over ten iterations; seed 003: a tagging and training
guide). Each arm is a dataset of the held-out toy character `kie_(kiln)` (pictures from
`toyworld.generate` with a `Mix`, served by the local booru replay, one saved query per part so a
part can go to its own subset) plus project.toml settings over the toy demo's. Every arm runs the
real journey (`kiln run`: fetch, dedupe, filter, tag, caption, plan, export, train, eval) and the
final checkpoint is evaluated at weight 1 against one fixed reference set of kie pictures (the
same for every arm, so fidelity is measured against the same target). Seed s gives both arms the
same pictures where they share them and the same training seed, so B - A is paired by seed.

    prune_core   A fixed features (hair, eyes, skin) kept in the captions; B pruned, folded into
                 the trigger (seed 003 "When to consolidate tags", seed 000 pruned hair/eye colour)
    back_views   front views in one subset (9 repeats), side and back views in another: A at 5
                 repeats (seed 000's first layout, 9_ / 5_), B at 1 (seed 000 iteration 2's precaution)
    closeups     A full-body pictures only (seed 000 iteration 0); B the same plus portrait,
                 upper-body and cowboy-shot close-ups (iteration 1)
    outfit_aug   A always the default outfit; B the same plus other outfits in their own subset at
                 a third of the repeats (iteration 2: 9_ main, 3_ alternative costumes)
    shuffle      A captions in fixed order (seed 000's kohya settings, shuffle_caption false);
                 B shuffled with the trigger kept first (seed 003, keep tokens 1)
    keep_tokens  A shuffled with the trigger shuffled too (keep_tokens 0); B keep_tokens 1 (seed 003)

Intervals: mean across seeds with a 95% Student-t interval; B - A is the mean of the per-seed
differences with a paired t-interval. "no difference shown" when that interval contains 0.
An arm shared by several recipes (the demo's own settings) runs once per seed. Results are kept
per arm and seed in --out, so a rerun with more seeds only runs the new ones.

    ./dev bench recipes [--recipes a,b] [--seeds 3] [--steps 400] [--out DIR] [--json FILE] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHARACTER = "kie_(kiln)"
KIE_MIX = {"anonymous": 0.0, "two_figures": 0.0, "default_outfit": 0.7}  # the toy demo's kie posts, solo
VIEWS = {"portrait": ["portrait"], "full_body": ["full_body"], "features": ["toy_features"]}


# -- recipes (pure) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Part:
    """`n` pictures drawn with `mix` (Mix fields over KIE_MIX) that go to `subset`; parts with the
    same `draw` number draw the same pictures for a given seed."""
    subset: str
    n: int
    mix: dict = field(default_factory=dict)
    draw: int = 0


@dataclass(frozen=True)
class Arm:
    label: str
    parts: tuple[Part, ...]
    settings: dict = field(default_factory=dict)  # "section.key" -> value, over the toy demo's

    def key(self) -> str:
        """Arms with the same pictures and settings are the same run, whatever their label."""
        spec = json.dumps([[asdict(p) for p in self.parts], self.settings], sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str
    a: Arm
    b: Arm
    metrics: tuple[str, ...]


DEFAULT = (Part("main", 40),)
DEMO_ARM = Arm("pruned, shuffled, keep_tokens 1 (kiln's defaults)", DEFAULT)
FRONT = {"view": {"front": 1.0}}
TURNED = {"view": {"from_side": 0.5, "from_behind": 0.5}}
CLOSE = {"framing": {"portrait": 1.0, "upper_body": 1.0, "cowboy_shot": 1.0}}
OTHER_OUTFITS = {"default_outfit": 0.0, "outfit": {"school_uniform": 1.0, "dress": 1.0, "armor": 1.0, "swimsuit": 1.0}}
NO_PRUNE = ["trigger", "remove", "overlap", "order"]

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("prune_core", "seed 003 (consolidate core tags into the main tag), seed 000 (hair/eye colour pruned)",
           Arm("fixed features kept in captions", DEFAULT, {"run.caption_steps": NO_PRUNE}), DEMO_ARM,
           ("fidelity", "fidelity@features", "flexibility", "leakage")),
    Recipe("back_views", "seed 000 (front 9_, side/back 5_; iteration 2: back view in 1_ as a precaution)",
           Arm("side/back subset at 5 repeats", (Part("main", 24, FRONT), Part("turned", 16, TURNED, 1)),
               {"export.repeats": {"main": 9, "turned": 5}}),
           Arm("side/back subset at 1 repeat", (Part("main", 24, FRONT), Part("turned", 16, TURNED, 1)),
               {"export.repeats": {"main": 9, "turned": 1}}),
           ("view_bias", "view_bias.back", "adherence.view", "fidelity")),
    Recipe("closeups", "seed 000 iteration 0 (full-body views only) vs iteration 1 (close-ups added)",
           Arm("full-body pictures only", (Part("main", 24, {"framing": {"full_body": 1.0}}),)),
           Arm("+ 16 close-ups", (Part("main", 24, {"framing": {"full_body": 1.0}}), Part("main", 16, CLOSE, 1))),
           ("fidelity@portrait", "fidelity@full_body", "fidelity")),
    Recipe("outfit_aug", "seed 000 iteration 2 (alternative costumes in 3_ beside the main 9_)",
           Arm("default outfit only", (Part("main", 30, {"default_outfit": 1.0}),), {"export.repeats": {"main": 9}}),
           Arm("+ 10 other outfits at 3 repeats", (Part("main", 30, {"default_outfit": 1.0}),
                                                   Part("outfits", 10, OTHER_OUTFITS, 1)),
               {"export.repeats": {"main": 9, "outfits": 3}}),
           ("outfit_lockin", "adherence.outfit", "flexibility.outfit", "fidelity")),
    Recipe("shuffle", "seed 000 (kohya shuffle_caption false) vs seed 003 (shuffle, keep tokens 1)",
           Arm("captions not shuffled", DEFAULT, {"train.data.shuffle_caption": False}), DEMO_ARM,
           ("fidelity", "leakage", "adherence", "flexibility")),
    Recipe("keep_tokens", "seed 003 (keep tokens 1 so the main tag stays first)",
           Arm("shuffled, trigger shuffled too (keep_tokens 0)", DEFAULT, {"train.data.keep_tokens": 0}), DEMO_ARM,
           ("fidelity", "leakage", "adherence", "flexibility")),
)}


def parts_queries(parts: tuple[Part, ...]) -> list[tuple[str, int, int]]:
    """(subset, first post id, last + 1) per part: part k's posts are ids 1000(k+1) + i."""
    return [(p.subset, 1000 * (k + 1), 1000 * (k + 1) + p.n) for k, p in enumerate(parts)]


def part_seed(seed: int, part: Part) -> int:
    return 1000 * (seed + 1) + part.draw


# -- statistics (pure) ----------------------------------------------------------------------------
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t_quantile(df: int) -> float:
    """Two-sided 95% Student-t quantile (table up to 30 degrees of freedom, then 1.96)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """Mean and 95% t-interval; no interval from fewer than two values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def paired(a: dict[int, float | None], b: dict[int, float | None]) -> tuple[list[float], list[float], list[float]]:
    """A's and B's values and the differences B - A over the seeds where both were measured."""
    seeds = sorted(s for s in a if a[s] is not None and b.get(s) is not None)
    return [a[s] for s in seeds], [b[s] for s in seeds], [b[s] - a[s] for s in seeds]


def verdict(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "too few seeds"
    if lo <= 0 <= hi:
        return "no difference shown"
    return "B higher" if lo > 0 else "B lower"


def compare(recipe: str, metric: str, a: dict[int, float | None], b: dict[int, float | None]) -> dict:
    va, vb, diff = paired(a, b)
    row = {"recipe": recipe, "metric": metric, "n": len(diff)}
    if not diff:
        return {**row, "a": None, "b": None, "diff": None, "verdict": "not measured"}
    row.update(a=t_interval(va), b=t_interval(vb), diff=t_interval(diff))
    return {**row, "verdict": verdict(*row["diff"][1:])}


def fmt(ci) -> str:
    if ci is None:
        return "–"
    mean, lo, hi = ci
    return f"{mean:.2f}" if lo is None else f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def format_table(rows: list[dict]) -> str:
    """A Markdown table: recipe, metric, A, B, B - A (means and 95% intervals), n, verdict."""
    out = ["| recipe | metric | A | B | B − A | n | |", "|---|---|---|---|---|---|---|"]
    out += [f"| {r['recipe']} | {r['metric']} | {fmt(r['a'])} | {fmt(r['b'])} | {fmt(r['diff'])} | {r['n']} | "
            f"{r['verdict']} |" for r in rows]
    return "\n".join(out)


def flatten(metrics: dict) -> dict[str, float | None]:
    """One candidate's metrics.json entry as flat values: each metric, its per-group values
    (`adherence.outfit`) and the view-bias parts (`view_bias.back`, `view_bias.side`)."""
    flat: dict[str, float | None] = {}
    for name, m in metrics.items():
        flat[name] = m.get("value")
        details = m.get("details") or {}
        for group, v in (details.get("groups") or {}).items():
            flat[f"{name}.{group}"] = v
        if name == "view_bias":
            for part in ("back", "side"):
                flat[f"{name}.{part}"] = details.get(part)
    return flat


# -- running an arm -------------------------------------------------------------------------------
def posts_for(parts: tuple[Part, ...], seed: int) -> list:
    from lorakiln.toyworld import Mix, generate, replay_post

    posts = []
    for part, (_, first, _) in zip(parts, parts_queries(parts)):
        mix = Mix(**{**KIE_MIX, **part.mix})
        for i, s in enumerate(generate(part.n, seed=part_seed(seed, part), characters=[CHARACTER], mix=mix)):
            posts.append(replay_post(first + i, s.image, s.tags))
    return posts


def write_reference(folder: Path, n: int = 48, seed: int = 9001) -> Path:
    """The pictures every arm's fidelity is measured against: kie in the demo's mix, one fixed seed."""
    from lorakiln.toyworld import Mix, generate

    if not (folder.is_dir() and len(list(folder.glob("*.png"))) == n):
        folder.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(generate(n, seed=seed, characters=[CHARACTER], mix=Mix(**KIE_MIX))):
            s.image.save(folder / f"kie-{i:03d}.png")
    return folder


def features_probe() -> dict:
    """A fidelity probe that names kie's fixed features (what a user of unpruned captions prompts)."""
    from lorakiln.toyworld import character

    words = ", ".join(t.replace("_", " ") for t in character(CHARACTER).fixed_tags())
    return {"name": "toy_features", "group": "fidelity", "prompt": f"{{trigger}}, {{subject}}, solo, upper body, {words}"}


def settings_for(arm: Arm, seed: int, steps: int, reference: Path, url: str) -> dict[tuple[str, ...], object]:
    from lorakiln.services.demo_toy import TOY_PROBES_EXTRA, TOY_PROBES_ONLY, toy_settings

    queries = [{"site": "danbooru", "query": f"{CHARACTER} solo id:>={lo} id:<{hi}", "base_url": url, "top": 500,
                "subset": subset} for subset, lo, hi in parts_queries(arm.parts)]
    bench = {("fetch", "queries"): queries, ("train", "seed"): 42 + seed, ("train", "max_train_steps"): steps,
             ("train", "save", "save_every_n_steps"): steps, ("eval", "checkpoints"): "last",
             ("eval", "reference_dir"): str(reference), ("eval", "probes", "probe_set"): "full",
             ("eval", "probes", "only"): [*TOY_PROBES_ONLY, "full_body"],
             ("eval", "probes", "extra"): [*TOY_PROBES_EXTRA, features_probe()]}
    mine = {tuple(k.split(".")): v for k, v in arm.settings.items()}
    return {**toy_settings(url), **bench, **mine}


def final_metrics(run_root: Path, suffix: str = "") -> dict[str, float | None]:
    """The final checkpoint's values at weight 1, and the base model's as `base:<name>`."""
    data = json.loads((run_root / "eval" / "metrics.json").read_text(encoding="utf-8"))
    final = [c for c in data["candidates"] if c.get("weight") == 1.0][-1]
    base = {f"base:{k}": v for k, v in flatten(data["base"]["metrics"]).items()}
    return {f"{k}{suffix}": v for k, v in {**flatten(final["metrics"]), **base}.items()}


def measure(proj) -> dict[str, float | None]:
    """The pipeline's eval of the final checkpoint, then the fidelity of single probes (VIEWS): a
    rerun of the eval with fewer probes, which reuses the pictures it has and draws the rest."""
    from lorakiln.core.progress import NullProgress
    from lorakiln.services.evaluate import run_eval

    run_root = sorted(p.parent.parent for p in proj.runs_dir.glob("*/eval/metrics.json"))[-1]
    values = final_metrics(run_root)
    cfg = proj.resolve("eval")
    for view, only in VIEWS.items():
        run_eval(proj, run_root.name, cfg.model_copy(update={"probes": cfg.probes.model_copy(update={"only": only})}),
                 NullProgress())
        got = final_metrics(run_root, f"@{view}")
        values.update({k: got.get(k) for k in (f"fidelity@{view}", f"base:fidelity@{view}")})
    return values


def run_arm(arm: Arm, seed: int, steps: int, work: Path, reference: Path) -> dict:
    """The toy journey (as `run_toy_demo`, with one saved query per part) and its measured values."""
    from lorakiln.core.progress import NullProgress
    from lorakiln.demo.booru_server import BooruReplay
    from lorakiln.services.demo_toy import BASE, TRIGGER
    from lorakiln.services.pipeline import run_pipeline
    from lorakiln.services.project import init_project

    start = time.perf_counter()
    shutil.rmtree(work, ignore_errors=True)  # the bench's own scratch folder
    work.mkdir(parents=True)
    proj = init_project(work / "kiln-demo", "kiln-toy-demo", [TRIGGER], base=str(BASE), character=CHARACTER)
    with BooruReplay(posts_for(arm.parts, seed), site="danbooru") as booru:
        proj.set_values(settings_for(arm, seed, steps, reference, booru.url))
        run_pipeline(proj, NullProgress())
    values = measure(proj)
    kept = proj.manifest().kept()
    subsets = {s: sum(r.subset == s for r in kept) for s in sorted({r.subset for r in kept})}
    captions = sorted(proj.dataset_dir.rglob("*.txt"))
    return {"arm": arm.key(), "label": arm.label, "seed": seed, "steps": steps, "images": len(kept),
            "subsets": subsets, "repeats": proj.get_value(("export", "repeats")),
            "caption_example": captions[0].read_text(encoding="utf-8").strip() if captions else None,
            "seconds": time.perf_counter() - start, "values": values}


def results_for(recipes: list[Recipe], seeds: int, steps: int, out: Path, log=print) -> dict[tuple[str, int], dict]:
    """Every distinct arm x seed, run once; kept in out/results/ so a rerun only adds what is new."""
    reference = write_reference(out / "reference")
    arms = {arm.key(): arm for r in recipes for arm in (r.a, r.b)}
    found: dict[tuple[str, int], dict] = {}
    for seed in range(seeds):
        for key, arm in arms.items():
            path = out / "results" / f"{key}-s{seed}-{steps}.json"
            if not path.exists():
                log(f"seed {seed}: {arm.label} ...")
                res = run_arm(arm, seed, steps, out / "work", reference)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(res, indent=1), encoding="utf-8")
                log(f"  {res['seconds']:.0f}s, {res['images']} images, fidelity {res['values'].get('fidelity')}")
            found[(key, seed)] = json.loads(path.read_text(encoding="utf-8"))
    shutil.rmtree(out / "work", ignore_errors=True)
    return found


def table_rows(recipes: list[Recipe], found: dict[tuple[str, int], dict]) -> list[dict]:
    rows = []
    for r in recipes:
        def per_seed(arm: Arm, metric: str) -> dict[int, float | None]:
            return {s: res["values"].get(metric) for (k, s), res in found.items() if k == arm.key()}

        rows += [compare(r.name, m, per_seed(r.a, m), per_seed(r.b, m)) for m in r.metrics]
    return rows


def arm_seconds(recipes: list[Recipe], found: dict[tuple[str, int], dict]) -> list[str]:
    lines = []
    for r in recipes:
        for side, arm in (("A", r.a), ("B", r.b)):
            runs = [res for (k, _), res in found.items() if k == arm.key()]
            secs = statistics.fmean(res["seconds"] for res in runs)
            imgs = statistics.fmean(res["images"] for res in runs)
            lines.append(f"{r.name:12} {side} {arm.label}: {len(runs)} runs, {secs:.0f} s each, {imgs:.0f} images")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated: " + ", ".join(RECIPES))
    ap.add_argument("--seeds", type=int, default=3, help="seeds per arm (dataset and training seed)")
    ap.add_argument("--steps", type=int, default=400, help="training steps per arm (the toy demo's 400)")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "kiln-bench-recipes",
                    help="results are kept here, per arm and seed")
    ap.add_argument("--json", type=Path, help="write the rows and per-arm results as JSON")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    unknown = [n for n in args.recipes.split(",") if n not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    import torch

    torch.set_num_threads(args.threads)
    recipes = [RECIPES[n] for n in args.recipes.split(",")]
    for r in recipes:
        print(f"{r.name}: A = {r.a.label}; B = {r.b.label}  ({r.source})")
    found = results_for(recipes, args.seeds, args.steps, args.out.absolute())
    rows = table_rows(recipes, found)
    print("\n" + format_table(rows) + "\n")
    print("\n".join(arm_seconds(recipes, found)))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "runs": list(found.values())}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
