"""The offline demo: the main journey on bundled tiny data and a tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path

from lorakiln.core.progress import Progress
from lorakiln.services.project import Project, init_project


def run_demo(out: Path, progress: Progress, log=print) -> Project:
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    proj = init_project(out / "kiln-demo", "kiln-demo", ["kilnchan"], base="tiny-sd15")
    log(f"project: {proj.root}")
    return proj
