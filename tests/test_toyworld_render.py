"""The toy world's renderer: deterministic pictures, every attribute visible where it should
be, boxes that hold the drawn figure, and its speed (printed, not asserted)."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import numpy as np
import pytest

from lorakiln.toyworld import Look, Mix, Scene, generate, render_scene, vocab
from lorakiln.toyworld.background import render_background
from lorakiln.toyworld.posts import png_bytes
from lorakiln.toyworld.scene import placement

BASE = Look("long_hair", "red", "blue", "light", "school_uniform", "blue")


def _px(scene: Scene) -> np.ndarray:
    return np.asarray(render_scene(scene)[0]).astype(int)


def _changed(a: Scene, b: Scene) -> np.ndarray:
    return np.abs(_px(a) - _px(b)).sum(axis=2) > 0


def _inside(mask: np.ndarray, box) -> bool:
    x0, y0, x1, y1 = box
    outside = mask.copy()
    outside[y0:y1, x0:x1] = False
    return not outside.any()


def _at(scene: Scene, x_units: float, y_units: float) -> tuple[int, ...]:
    """The output pixel at a point of the (single) figure, in figure units."""
    cx, top, s = placement(scene)[0]
    k = scene.supersample
    return tuple(_px(scene)[int((top + y_units * s) / k), int((cx + x_units * s) / k)])


def test_same_seed_same_bytes_and_items_do_not_depend_on_n():
    a = [png_bytes(x.image) for x in generate(6, seed=3)]
    b = [png_bytes(x.image) for x in generate(6, seed=3)]
    assert a == b
    assert [png_bytes(x.image) for x in generate(2, seed=3, start=4)] == a[4:]
    assert a != [png_bytes(x.image) for x in generate(6, seed=4)]
    assert [x.tags for x in generate(6, seed=3)] == [x.tags for x in generate(6, seed=3)]


FIGURE_CHANGES = [
    ("hair_style", [v for v in vocab.HAIR_STYLES if v != BASE.hair_style]),
    ("hair_colour", [v for v in vocab.HAIR_COLOURS if v != BASE.hair_colour]),
    ("eye_colour", [v for v in vocab.EYE_COLOURS if v != BASE.eye_colour]),
    ("skin", [v for v in vocab.SKINS if v != BASE.skin]),
    ("outfit_colour", [v for v in vocab.OUTFIT_COLOUR_CHOICES[BASE.outfit] if v != BASE.outfit_colour]),
    ("accessories", [(a,) for a in vocab.ACCESSORIES]),
    ("view", ["from_side", "from_behind"]),
]


@pytest.mark.parametrize("framing", ["full_body", "portrait"])
def test_every_figure_attribute_changes_pixels_only_on_the_figure(framing):
    base = Scene((BASE,), framing, "sky", seed=5)
    person = render_scene(base)[1][0].person
    for attr, values in FIGURE_CHANGES + [("outfit", [o for o in vocab.OUTFITS if o != "school_uniform"])]:
        for v in values:
            look = replace(BASE, **{attr: v})
            if attr == "outfit":
                look = replace(look, outfit_colour="red")
            other = replace(base, figures=(look,))
            diff = _changed(base, other)
            assert diff.any(), f"{attr}={v} changed nothing in a {framing} picture"
            union = render_scene(other)[1][0].person
            box = (min(person[0], union[0]), min(person[1], union[1]), max(person[2], union[2]),
                   max(person[3], union[3]))
            assert _inside(diff, box), f"{attr}={v} changed pixels off the figure"


def test_scene_attributes_change_pixels():
    base = Scene((BASE,), "cowboy_shot", "white", seed=2)
    others = [replace(base, framing=f) for f in vocab.FRAMINGS if f != base.framing]
    others += [replace(base, background=b, background_colour="pink" if b == "simple" else None)
               for b in vocab.BACKGROUNDS if b != "white"]
    others += [replace(base, style=s) for s in vocab.STYLES if s != "flat"]
    for other in others:
        assert _changed(base, other).any(), other


def test_hair_colour_shows_in_the_hair_and_eyes_hide_from_behind():
    front = Scene((BASE,), "portrait", "white", seed=1)
    assert _at(front, 0.0, 0.15) == vocab.HAIR_COLOURS["red"]  # the crown, flat style
    blue = replace(front, figures=(replace(BASE, hair_colour="blue"),))
    assert _at(blue, 0.0, 0.15) == vocab.HAIR_COLOURS["blue"]
    assert _at(front, 0.19, 0.56) == vocab.EYE_COLOURS["blue"]  # the iris above the pupil
    behind = replace(front, figures=(replace(BASE, view="from_behind"),))
    assert _at(behind, 0.19, 0.56) == vocab.HAIR_COLOURS["red"]
    for attr, v in (("eye_colour", "green"), ("accessories", ("glasses",)), ("accessories", ("hairclip",))):
        other = replace(behind, figures=(replace(BASE, view="from_behind", **{attr: v}),))
        assert not _changed(behind, other).any(), f"{attr}={v} shows from behind"


def test_framing_changes_the_figures_scale():
    heights = []
    for framing in ("full_body", "cowboy_shot", "upper_body", "portrait"):
        _, boxes = render_scene(Scene((BASE,), framing, "white"))
        heights.append(boxes[0].head[3] - boxes[0].head[1])
    assert heights == sorted(heights) and heights[-1] >= 2.4 * heights[0], heights
    assert heights[0] >= 10  # a full-body head is still 10+ pixels tall at 64x64


def test_boxes_lie_inside_the_picture_and_cover_the_figures():
    mix = Mix(two_figures=0.4)
    for sample in generate(40, seed=11, mix=mix, size=64):
        sc = sample.scene
        r = sc.size * sc.supersample
        bg = render_background(sc.background, sc.background_colour, r, random.Random(f"toyworld-bg/{sc.seed}"))
        diff = np.abs(np.asarray(sample.image).astype(int) - np.asarray(bg.reduce(sc.supersample)).astype(int))
        drawn = diff.sum(axis=2) > 0
        assert len(sample.boxes) == len(sc.figures)
        ys, xs = np.nonzero(drawn)
        x0 = min(b.person[0] for b in sample.boxes)
        y0 = min(b.person[1] for b in sample.boxes)
        x1 = max(b.person[2] for b in sample.boxes)
        y1 = max(b.person[3] for b in sample.boxes)
        assert _inside(drawn, (x0, y0, x1, y1)), sample.tags.general
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)  # tight
        for b in sample.boxes:
            for box in (b.person, b.head, b.halfbody):
                assert 0 <= box[0] < box[2] <= sc.size and 0 <= box[1] < box[3] <= sc.size, box
            p, h, hb = b.person, b.head, b.halfbody
            assert p[0] <= h[0] and p[1] <= h[1] and h[2] <= p[2] and h[3] <= hb[3] <= p[3]
            assert h[1] - p[1] <= 2 and hb[1] == p[1]


def test_two_figure_boxes_follow_their_figures():
    a = replace(BASE, character="akane_(kiln)")
    b = Look("short_hair", "blue", "green", "tan", "hoodie", "black", character="sora_(kiln)")
    img, boxes = render_scene(Scene((a, b), "full_body", "white", seed=4))
    assert [x.character for x in boxes] == ["akane_(kiln)", "sora_(kiln)"]
    assert boxes[0].person[0] < boxes[1].person[0] and boxes[0].head[2] <= boxes[1].head[0]
    px = np.asarray(img)
    left, right = boxes[0].head, boxes[1].head
    assert (px[left[1]:left[3], left[0]:left[2]] == vocab.HAIR_COLOURS["red"]).all(axis=2).any()
    assert not (px[right[1]:right[3], right[0]:right[2]] == vocab.HAIR_COLOURS["red"]).all(axis=2).any()


def test_bad_scene_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown hair colour 'teal'"):
        render_scene(Scene((replace(BASE, hair_colour="teal"),)))
    with pytest.raises(ValueError, match="no 'yellow' 'armor'"):
        render_scene(Scene((replace(BASE, outfit="armor", outfit_colour="yellow"),)))
    with pytest.raises(ValueError, match="two-figure scenes"):
        render_scene(Scene((BASE, BASE), "portrait"))


def test_size_is_configurable():
    for size, k in ((32, 4), (128, 2), (96, 1)):
        s = next(generate(1, seed=0, size=size, supersample=k))
        assert s.image.size == (size, size)
        assert all(b.person[2] <= size and b.person[3] <= size for b in s.boxes)


def test_speed_is_printed():
    t = time.perf_counter()
    n = sum(1 for _ in generate(200, seed=0))
    dt = time.perf_counter() - t
    print(f"\ntoyworld: {n / dt:.0f} pictures/s at 64x64 (rendered at 128) on one core")
