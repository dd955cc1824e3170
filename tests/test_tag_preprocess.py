"""Golden tests of the tagger input: white padding, centring, BGR order, size, dtype."""

import numpy as np
import pytest
from PIL import Image

from lorakiln.core.errors import ItemError
from lorakiln.tagging.preprocess import load_for_tagger, pad_square, prepare

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
W = [255.0, 255.0, 255.0]


def _img(pixels, mode="RGB"):
    h, w = len(pixels), len(pixels[0])
    im = Image.new(mode, (w, h))
    im.putdata([p for row in pixels for p in row])
    return im


def test_wide_image_padded_below_with_white_and_flipped_to_bgr():
    arr = prepare(_img([[RED, BLUE]]), 2)  # 2x1: side 2, top offset (2-1)//2 = 0
    expected = np.array([[[0, 0, 255], [255, 0, 0]], [W, W]], dtype=np.float32)
    assert arr.dtype == np.float32 and arr.shape == (2, 2, 3)
    np.testing.assert_array_equal(arr, expected)


def test_tall_image_centred_between_white_columns():
    arr = prepare(_img([[GREEN], [(10, 20, 30)], [(200, 100, 50)]]), 3)  # 1x3: left offset 1
    expected = np.array([
        [W, [0, 255, 0], W],
        [W, [30, 20, 10], W],
        [W, [50, 100, 200], W],
    ], dtype=np.float32)
    np.testing.assert_array_equal(arr, expected)


def test_odd_padding_puts_the_extra_pixel_right():
    sq = pad_square(_img([[RED, RED, RED, RED]]))  # 4x1 -> 4x4, image on row (4-1)//2 = 1
    a = np.asarray(sq)
    assert a.shape == (4, 4, 3)
    assert (a[1] == RED).all() and (a[0] == 255).all() and (a[2:] == 255).all()


def test_transparency_is_composited_on_white():
    im = _img([[(255, 0, 0, 0), (0, 0, 255, 255), (255, 0, 0, 128)]], mode="RGBA")
    arr = prepare(im, 3)
    row = arr[1]  # 3x1 image sits on the middle row
    np.testing.assert_array_equal(row[0], W)  # fully transparent -> white
    np.testing.assert_array_equal(row[1], [255, 0, 0])  # opaque blue in BGR
    assert row[2][2] == 255 and abs(row[2][0] - 127) <= 1 and abs(row[2][1] - 127) <= 1


def test_resize_to_model_size_keeps_a_flat_colour_exact():
    arr = prepare(Image.new("RGB", (40, 40), (10, 20, 30)), 16)
    assert arr.shape == (16, 16, 3) and arr.dtype == np.float32
    assert (arr == np.array([30, 20, 10], dtype=np.float32)).all()


def test_resize_of_padded_image_keeps_white_bands():
    arr = prepare(Image.new("RGB", (64, 32), (0, 0, 0)), 8)  # 64x64 canvas, black rows 16..47
    assert arr.shape == (8, 8, 3)
    assert (arr[0] == 255).all() and (arr[-1] == 255).all()
    assert (arr[3:5] == 0).all()  # the middle stays black
    np.testing.assert_array_equal(arr, arr[::-1])  # centred: symmetric top/bottom


def test_grey_and_palette_images_become_three_channels():
    np.testing.assert_array_equal(prepare(Image.new("L", (2, 2), 77), 2), np.full((2, 2, 3), 77, np.float32))
    p = Image.new("P", (2, 2), 0)
    p.putpalette([10, 20, 30] + [0] * 765)
    np.testing.assert_array_equal(prepare(p, 2)[0, 0], [30, 20, 10])


def test_load_for_tagger_reads_files_and_reports_bad_ones(tmp_path):
    good = tmp_path / "a.png"
    _img([[RED, BLUE]]).save(good)
    np.testing.assert_array_equal(load_for_tagger(good, 2), prepare(_img([[RED, BLUE]]), 2))
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(ItemError, match="b.jpg"):
        load_for_tagger(bad, 2)
