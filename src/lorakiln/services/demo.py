"""`kiln demo --world tiny`: the whole journey on bundled tiny data and the random-weight tiny model.

A local replay of Danbooru (a real HTTP server on 127.0.0.1) stands in for the site, a folder
of "your own pictures" with captions is imported beside it, a real ONNX tagger built for the
demo pictures tags them, and the tiny SD1.5-shaped model is trained and evaluated. Every stage
is the real one; only the data and the models are small.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from lorakiln.core.errors import KilnError
from lorakiln.core.progress import Progress
from lorakiln.demo.booru_server import BooruReplay
from lorakiln.demo.catalogue import CHARACTER, demo_catalogue
from lorakiln.demo.images import Spec, make_image
from lorakiln.demo.tagger import write_demo_tagger
from lorakiln.services.pipeline import StageResult, run_pipeline
from lorakiln.services.project import Project, init_project

TRIGGER = "kilnchan"
SCALE = 0.3  # demo pictures of about 150-200 px: enough for a 64-128 px model, quick to decode


def own_pictures(folder: Path, n: int = 6) -> Path:
    """A kohya-style folder of the user's own pictures: 2_summer/ with image + .txt captions."""
    sub = folder / "2_summer"
    sub.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        spec = Spec(seed=7000 + i, outfit="swimsuit", background="outdoors", view="front" if i % 3 else "side",
                    width=180, height=220, scale=(0.8, 1.0, 1.2)[i % 3], shift=(-0.15, 0.0, 0.15)[i % 3])
        make_image(spec).save(sub / f"summer_{i:02d}.png")
        (sub / f"summer_{i:02d}.txt").write_text(", ".join([TRIGGER, *spec.tags(), "beach"]) + "\n")
    return folder


def demo_settings(booru_url: str, pictures: Path, tagger: Path) -> dict[tuple[str, ...], object]:
    """What a user would write into project.toml for this project."""
    return {
        ("fetch", "rate"): 50.0,  # a local replay; real sites keep their polite defaults
        ("fetch", "queries"): [{"site": "danbooru", "query": f"{CHARACTER} solo", "base_url": booru_url,
                                "top": 40}],
        ("run", "import_folders"): [str(pictures)],
        ("tag", "model"): str(tagger),
        ("filter", "min_short_side"): 96,  # the demo pictures are small on purpose
        ("dedupe", "threshold"): 5,  # synthetic pictures are simpler than real ones
    }


def prepare_demo(out: Path) -> tuple[Project, Path, Path]:
    """A fresh demo folder: (project, own pictures folder, tagger folder), all absolute paths."""
    out = Path(out).absolute()  # project.toml paths are read from the project folder, not from here
    if out.exists():
        _check_replaceable(out)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pictures = own_pictures(out / "my-pictures")
    tagger = write_demo_tagger(out / "models" / "demo-tagger")
    proj = init_project(out / "kiln-demo", "kiln-demo", [TRIGGER], base="tiny-sd15", character=CHARACTER)
    return proj, pictures, tagger


def run_demo(out: Path, progress: Progress, log: Callable[[str], None] = print) -> Project:
    proj, pictures, tagger = prepare_demo(out)
    log(f"project {proj.root}: trigger {TRIGGER!r}, base tiny-sd15 (a toy model, not for real LoRAs)")

    def show(res: StageResult) -> None:
        log(f"{'skip' if res.skipped else 'done'} {res.stage:8} {res.summary}")

    with BooruReplay(demo_catalogue(24, scale=SCALE), site="danbooru") as booru:
        log(f"local Danbooru replay at {booru.url}")
        proj.set_values(demo_settings(booru.url, pictures, tagger))
        run_pipeline(proj, progress, on_result=show)
    for run in sorted(proj.runs_dir.glob("*/eval/report.html"))[-1:]:
        log(f"open {run} (evaluation) and {run.parent.parent / 'card.md'} (model card)")
    return proj


DEMO_PARTS = {"kiln-demo", "my-pictures", "models"}


def _check_replaceable(out: Path) -> None:
    """The demo starts afresh, but only ever deletes a folder an earlier demo made (or an empty one)."""
    if not out.is_dir():
        raise KilnError(f"{out}: exists and is not a folder; give the demo another --dir")
    extra = sorted(p.name for p in out.iterdir() if p.name not in DEMO_PARTS)
    if extra:
        raise KilnError(f"{out}: not an earlier demo's folder (it holds {', '.join(extra[:3])}"
                        f"{' ...' if len(extra) > 3 else ''}); the demo deletes its folder first, so give it "
                        "a new or empty --dir")
