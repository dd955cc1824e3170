"""`kiln demo` (the default, `--world toy`): the whole journey in the toy world, where a trained LoRA can be seen.

A local Danbooru replay serves posts of the held-out character `kie_(kiln)` (no pretraining
picture shows her) among posts of other toy characters; `kiln run` fetches them, tags them with
the toy tagger, trains a LoRA on the toy SD1.5 base (64x64) and evaluates it with the toy CCIP,
so the report's fidelity compares what the base model draws for the trigger with what each
checkpoint draws. Every stage is the real one; only the world and the models are small.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Callable

from PIL import Image

from lorakiln.core.progress import Progress
from lorakiln.demo.booru_server import BooruReplay, ReplayPost
from lorakiln.services.demo import _check_replaceable
from lorakiln.services.pipeline import StageResult, run_pipeline
from lorakiln.services.project import Project, init_project

TRIGGER = "kie_kiln"
CHARACTER = "kie_(kiln)"
WEIGHTS = Path(__file__).resolve().parent.parent / "toyworld" / "weights"
BASE = WEIGHTS / "base" / "toy-sd15.safetensors"
TAGGER = WEIGHTS / "tagger"
CCIP = WEIGHTS / "ccip"


def toy_posts(n_kie: int = 40, n_other: int = 12, seed: int = 11, *, copies: bool = True) -> list[ReplayPost]:
    """Posts of kie in varied views, framings, backgrounds and styles (a few with a second girl),
    then posts of pretraining characters and anonymous girls that a `kie_(kiln)` search skips;
    with `copies`, what the dataset stages should catch: two re-uploads of kie posts (one
    re-encoded as JPEG, one scaled up and re-encoded) and a greyscale kie picture."""
    from lorakiln.toyworld import PRETRAIN, Mix, generate, replay_post

    kie = list(generate(n_kie, seed=seed, characters=[CHARACTER], mix=Mix(anonymous=0.0, two_figures=0.1,
                                                                           default_outfit=0.7)))
    others = generate(n_other, seed=seed + 1, characters=[c.name for c in PRETRAIN[:4]], mix=Mix(anonymous=0.3))
    posts = [replay_post(1000 + i, s.image, s.tags) for i, s in enumerate([*kie, *others])]
    if copies:
        posts += _copies(kie, first_id=1000 + len(posts))
    return posts


def _copies(kie: list, first_id: int) -> list[ReplayPost]:
    """Re-uploads (dedupe drops them) and a greyscale picture (the monochrome filter drops it)."""
    from dataclasses import replace

    from lorakiln.toyworld import Mix, generate, replay_post

    solo = [s for s in kie if "solo" in s.tags.general]
    bigger = solo[1].image.resize((80, 80), Image.Resampling.BICUBIC)
    again = replace(replay_post(first_id, solo[0].image, solo[0].tags), image=_jpeg(solo[0].image, 85), ext="jpg")
    upscaled = replace(replay_post(first_id + 1, bigger, solo[1].tags), image=_jpeg(bigger, 75), ext="jpg")
    src = next(generate(1, seed=97, characters=[CHARACTER], mix=Mix(anonymous=0.0, two_figures=0.0)))
    grey_tags = replace(src.tags, general=tuple(sorted({*src.tags.general, "greyscale", "monochrome"})))
    grey = replay_post(first_id + 2, src.image.convert("L").convert("RGB"), grey_tags)
    return [again, upscaled, grey]


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def own_pictures(folder: Path, n: int = 6, seed: int = 31) -> Path:
    """A kohya-style folder of "your own" pictures: 2_summer/ with image + .txt captions (kie in
    swimsuits outdoors, captions as a user writes them: the trigger, then tags with spaces)."""
    from lorakiln.toyworld import Mix, generate

    sub = folder / "2_summer"
    sub.mkdir(parents=True, exist_ok=True)
    mix = Mix(anonymous=0.0, two_figures=0.0, default_outfit=0.0, outfit={"swimsuit": 1.0},
              background={"sky": 1.0})
    for i, s in enumerate(generate(n, seed=seed, characters=[CHARACTER], mix=mix)):
        s.image.save(sub / f"summer_{i:02d}.png")
        words = [t.replace("_", " ") for t in s.tags.general]
        (sub / f"summer_{i:02d}.txt").write_text(", ".join([TRIGGER, *words]) + "\n")
    return folder


# kiln eval's built-in probes ask for things this world does not have (maid, yukata, classrooms);
# these are the world's own: the built-in probes whose words it knows, plus its outfits,
# backgrounds and another character, so flexibility, adherence and lock-in are measured here too.
TOY_PROBES_ONLY = ["portrait", "dataset", "cowboy_shot", "from_behind", "from_side", "no_trigger",
                   "toy_dress", "toy_armor", "toy_swimsuit", "toy_sky", "toy_room", "toy_other"]
TOY_PROBES_EXTRA = [
    {"name": "toy_dress", "group": "outfit", "prompt": "{trigger}, {subject}, solo, upper body, dress, white dress",
     "tags": ["dress", "white_dress"]},
    {"name": "toy_armor", "group": "outfit", "prompt": "{trigger}, {subject}, solo, cowboy shot, armor, red armor",
     "tags": ["armor", "red_armor"]},
    {"name": "toy_swimsuit", "group": "outfit", "prompt": "{trigger}, {subject}, solo, cowboy shot, swimsuit, "
     "one-piece swimsuit, blue one-piece swimsuit", "tags": ["one-piece_swimsuit"]},
    {"name": "toy_sky", "group": "background", "prompt": "{trigger}, {subject}, solo, full body, outdoors, sky, "
     "blue sky, cloud, day", "tags": ["outdoors", "sky"]},
    {"name": "toy_room", "group": "background", "prompt": "{trigger}, {subject}, solo, full body, indoors, window, "
     "wooden floor", "tags": ["indoors", "window"]},
    {"name": "toy_other", "group": "unrelated", "prompt": "1girl, solo, akane (kiln), upper body, school uniform, "
     "serafuku, blue sailor collar", "tags": ["school_uniform", "red_hair"]},
]


def toy_settings(booru_url: str) -> dict[tuple[str, ...], object]:
    """What a user would write into project.toml to train kie on the toy base in a minute or two."""
    return {
        ("fetch", "rate"): 50.0,  # a local replay
        ("fetch", "queries"): [{"site": "danbooru", "query": f"{CHARACTER} solo", "base_url": booru_url,
                                "top": 60}],
        ("tag", "model"): str(TAGGER),
        ("filter", "min_short_side"): 64,  # the toy world is 64x64
        ("dedupe", "threshold"): 2,  # toy pictures share flat colours; only near-copies are duplicates
        ("plan", "weights"): {"summer": 0.25},  # the swimsuit folder: outfit variety at a low share (seed 000)
        ("train", "base"): str(BASE),
        ("train", "max_train_steps"): 400,
        ("train", "train_batch_size"): 4,
        ("train", "network", "network_dim"): 8,
        ("train", "network", "network_alpha"): 8.0,
        ("train", "optimizer", "learning_rate"): 2e-3,
        ("train", "save", "save_every_n_steps"): 100,
        ("eval", "width"): 64,
        ("eval", "height"): 64,
        ("eval", "weights"): [0.5, 1.0],
        ("eval", "max_checkpoints"): 4,
        ("eval", "probes", "probe_set"): "standard",
        ("eval", "probes", "only"): TOY_PROBES_ONLY,
        ("eval", "probes", "extra"): TOY_PROBES_EXTRA,
        ("eval", "models", "embedder"): "ccip",
        ("eval", "models", "ccip_local"): str(CCIP),
        ("eval", "models", "tagger"): str(TAGGER),
    }


def prepare_toy_demo(out: Path, own: bool = True) -> tuple[Project, Path | None]:
    """A fresh demo folder: (project, the folder of "your own" pictures or None)."""
    out = Path(out).absolute()
    if out.exists():
        _check_replaceable(out)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pictures = own_pictures(out / "my-pictures") if own else None
    return init_project(out / "kiln-demo", "kiln-toy-demo", [TRIGGER], base=str(BASE), character=CHARACTER), pictures


def run_toy_demo(out: Path, progress: Progress, log: Callable[[str], None] = print,
                 overrides: dict[tuple[str, ...], object] | None = None,
                 posts: list[ReplayPost] | None = None) -> Project:
    """The toy journey. Experiments (bench/recipes.py) pass `overrides`, project.toml values set
    over the demo's, and `posts`, the booru's posts instead of `toy_posts()`; then no folder of
    "your own" pictures is imported either, so the posts are the whole dataset."""
    proj, pictures = prepare_toy_demo(out, own=posts is None)
    log(f"project {proj.root}: trigger {TRIGGER!r}, toy base {BASE.name} (64x64, a toy world)")

    def show(res: StageResult) -> None:
        log(f"{'skip' if res.skipped else 'done'} {res.stage:8} {res.summary}")

    with BooruReplay(posts if posts is not None else toy_posts(), site="danbooru") as booru:
        log(f"local Danbooru replay at {booru.url}")
        own = {("run", "import_folders"): [str(pictures)]} if pictures else {}
        proj.set_values({**toy_settings(booru.url), **own, **(overrides or {})})
        run_pipeline(proj, progress, on_result=show)
    for run in sorted(proj.runs_dir.glob("*/eval/report.html"))[-1:]:
        log(f"open {run} (evaluation) and {run.parent.parent / 'card.md'} (model card)")
    return proj
