"""X/Y/Z grids: cell positions, picture size, label text, missing cells; axis planning."""

import numpy as np
import pytest
from PIL import Image

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.axes import AxisContext, Cell, parse_axis, plan_cells
from lorakiln.evaluate.grid import MISSING, plan_layout, render_grid, render_label

COLOURS = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(255, 255, 0), (0, 255, 255), (255, 0, 255)]]


def _solid(c, size=(48, 40)):
    return Image.new("RGB", size, c)


def test_cells_sit_where_the_layout_says_and_labels_are_drawn():
    cells = [[_solid(c) for c in row] for row in COLOURS]
    xl, yl = ["weight 0.6", "weight 0.8", "weight 1"], ["epoch 2", "epoch 4"]
    img = render_grid(cells, xl, yl, "seed 7")
    lay = plan_layout(3, 2, 48, 40, xl, yl, "seed 7")
    assert img.size == lay.size == (lay.left + 3 * 48, lay.title_h + lay.top + 2 * 40)
    assert lay.left > 0 and lay.top > 0 and lay.title_h > 0
    arr = np.asarray(img)
    for y, row in enumerate(COLOURS):
        for x, c in enumerate(row):
            x0, y0, x1, y1 = lay.cell_box(x, y)
            assert (arr[y0:y1, x0:x1] == c).all(), (x, y)
    # each label area is exactly the label rendered alone, and it holds dark (text) pixels
    for x, text in enumerate(xl):
        box = lay.col_label_box(x)
        crop = np.asarray(img.crop(box))
        alone = np.asarray(render_label(text, box[2] - box[0], box[3] - box[1], lay.font_size))
        assert (crop == alone).all() and crop.min() < 100
    for y, text in enumerate(yl):
        box = lay.row_label_box(y)
        assert (np.asarray(img.crop(box)) == np.asarray(render_label(text, box[2] - box[0], box[3] - box[1],
                                                                     lay.font_size))).all()
    # different texts give different pixels (the text is really rendered)
    assert not np.array_equal(np.asarray(render_label("epoch 2", 60, 20, 12)),
                              np.asarray(render_label("epoch 4", 60, 20, 12)))


def test_no_labels_means_a_plain_mosaic_and_missing_cells_are_grey():
    cells = [[_solid((10, 20, 30)), None]]
    img = render_grid(cells, [], [])
    assert img.size == (96, 40)
    arr = np.asarray(img)
    assert (arr[:, :48] == (10, 20, 30)).all() and (arr[:, 48:] == MISSING).all()


def test_long_labels_wrap_instead_of_overflowing():
    lay = plan_layout(2, 1, 64, 64, ["a very long prompt replacement value that wraps", "b"], [])
    short = plan_layout(2, 1, 64, 64, ["a", "b"], [])
    assert lay.top > short.top
    assert render_label("x " * 200, 64, 30, 10).size == (64, 30)


def test_axis_planning_xyz():
    ctx = AxisContext({"epoch 1": "/r/k-000001.safetensors", "epoch 2": "/r/k-000002.safetensors",
                       "final": "/r/k.safetensors"})
    x = parse_axis("weight=0.5-1 [3]", ctx)
    y = parse_axis("epoch=1,2", ctx)
    z = parse_axis("prompt=red,blue", ctx)
    assert x[0].labels == ["weight 0.5", "weight 0.75", "weight 1"]
    assert y[0].values == ["epoch 1", "epoch 2"]
    cells = plan_cells(Cell("1girl, red hair", seed=5), [x, y, z])
    assert len(cells) == 12
    c = cells[(2, 1, 1)]
    assert (c.prompt, c.weight, c.checkpoint, c.seed) == ("1girl, blue hair", 1.0, "/r/k-000002.safetensors", 5)
    assert cells[(0, 0, 0)].prompt == "1girl, red hair"  # the search value itself is the first column
    assert parse_axis("checkpoint=last:2", ctx)[0].values == ["epoch 2", "final"]
    # A1111 Prompt S/R keeps an empty replacement: "-000002," = epoch 2 and the final file
    sr = parse_axis("prompt=-000002,", ctx)
    assert sr[0].values == ["-000002", ""] and sr[0].labels == ["-000002", '""']
    assert [c.prompt for c in plan_cells(Cell("<lora:k-000002:1>"), [sr]).values()] == [
        "<lora:k-000002:1>", "<lora:k:1>"]
    assert parse_axis("checkpoint=k-000001.safetensors", ctx)[0].values == ["epoch 1"]


def test_axis_errors_are_clear():
    with pytest.raises(KilnError, match="KIND=VALUES"):
        parse_axis("weights 1,2", AxisContext())
    with pytest.raises(KilnError, match="needs a run"):
        parse_axis("checkpoint=all", AxisContext())
    with pytest.raises(KilnError, match="unknown grid axis"):
        parse_axis("colour=red", AxisContext())
    x = parse_axis("prompt=green,blue", AxisContext())
    with pytest.raises(KilnError, match="neither the prompt"):
        plan_cells(Cell("red hair"), [x])
