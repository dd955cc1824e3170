"""`kiln grid` over a run's checkpoints and weights on the tiny model: layout, labels, paired seeds, reuse."""

import numpy as np
import pytest
from PIL import Image

from lorakiln.evaluate.grid import plan_layout, render_label
from lorakiln.services.project import init_project
from lorakiln.train.families import FAMILIES
from tiny_run import make_run


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    fam = FAMILIES.get("tiny-sd15")
    p = init_project(tmp_path_factory.mktemp("g") / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
    make_run(p.runs_dir, fam, fam.load("tiny-sd15"), scale=0.3)
    return p


def _cells(img_path, lay):
    arr = np.asarray(Image.open(img_path).convert("RGB")).astype(int)
    return {(x, y): arr[b[1]:b[3], b[0]:b[2]] for x in range(lay.cols) for y in range(lay.rows)
            for b in [lay.cell_box(x, y)]}


def test_grid_of_weights_by_checkpoints(cli, proj):
    args = ["grid", "20260101-000000-kiln", "--prompt", "kilnchan, 1girl", "--x", "weight=0,1", "--y",
            "checkpoint=all", "--steps", "2", "--seed", "5"]
    code, text = cli(*args, cwd=proj.root)
    assert code == 0, text
    (path,) = sorted((proj.runs_dir / "20260101-000000-kiln" / "grids").glob("grid-*.png"))
    # the final file equals epoch 2 (same tensors), so two rows; cells are 64 px
    lay = plan_layout(2, 2, 64, 64, ["weight 0", "weight 1"], ["epoch 1", "epoch 2"])
    assert Image.open(path).size == lay.size
    cells = _cells(path, lay)
    assert np.array_equal(cells[(0, 0)], cells[(0, 1)])  # weight 0 is the base model: same seed, same picture
    assert np.abs(cells[(1, 0)] - cells[(1, 1)]).mean() > 3  # the checkpoints differ at weight 1
    assert np.abs(cells[(0, 0)] - cells[(1, 0)]).mean() > 3
    box = lay.col_label_box(1)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB").crop(box)),
                          np.asarray(render_label("weight 1", box[2] - box[0], box[3] - box[1], lay.font_size)))
    # the weight-0 cell is exactly what `kiln sample` gives without a LoRA for the same seed and settings
    code, text = cli("sample", "kilnchan, 1girl", "--seed", "5", "--steps", "2", "--out", str(proj.root / "s"),
                     cwd=proj.root)
    assert code == 0, text
    (base,) = (proj.root / "s").glob("*.png")
    assert np.array_equal(np.asarray(Image.open(base).convert("RGB")).astype(int), cells[(0, 0)])
    code, text = cli(*args, cwd=proj.root)
    assert code == 0 and "reused 3" in text  # 4 cells, two of them the same picture (weight 0)


def test_z_axis_gives_one_picture_per_value(cli, proj, tmp_path):
    lora = proj.runs_dir / "20260101-000000-kiln" / "kiln-000001.safetensors"
    code, text = cli("grid", "--prompt", "kilnchan, red hair", "--lora", f"{lora}:0.5", "--x", "seed=1,2",
                     "--z", "prompt=red,blue", "--steps", "1", "--out", str(tmp_path / "o"), cwd=proj.root)
    assert code == 0, text
    files = sorted((tmp_path / "o").glob("grid-*.png"))
    assert [f.name.endswith(("-z1.png", "-z2.png")) for f in files] == [True, True]
    assert len(list((tmp_path / "o" / "cells").glob("*.png"))) == 4
    info = Image.open(next((tmp_path / "o" / "cells").glob("*.png"))).info["parameters"]
    assert "<lora:kiln:0.5>" in info
