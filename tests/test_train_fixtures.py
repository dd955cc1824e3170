"""Helpers shared by the training tests (no tests here): tiny projects and a stoppable progress."""

from __future__ import annotations

from pathlib import Path

from lorakiln.demo.images import Spec, make_image

SPECS = [Spec(seed=1, outfit="coat", view="front"), Spec(seed=2, outfit="swimsuit", background="outdoors"),
         Spec(seed=3, outfit="dress", view="side"), Spec(seed=4, outfit="coat", background="indoors")]


def write_subset(folder: Path, specs=SPECS, trigger: str = "kilnchan", scale: int = 8) -> list[Path]:
    """`folder` as `kiln export` writes it: image + caption .txt, kohya's N_name convention."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(specs):
        img = make_image(s).resize((s.width // scale, s.height // scale))
        p = folder / f"{i:03d}.png"
        img.save(p)
        (folder / f"{i:03d}.txt").write_text(", ".join([trigger, *s.tags()]))
        out.append(p)
    return out


def tiny_project(root: Path, repeats: int = 1, specs=SPECS, train: dict | None = None):
    """A project on tiny-sd15 with dataset/<repeats>_main/ and optional [train] values."""
    from lorakiln.services.project import init_project

    proj = init_project(root, "kiln-demo", ["kilnchan"], base="tiny-sd15")
    write_subset(proj.dataset_dir / f"{repeats}_main", specs)
    if train:
        proj.set_section("train", train)
    return proj
