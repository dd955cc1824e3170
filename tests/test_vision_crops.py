"""Close-up crop geometry and crop captions, on boxes the toy world's renderer knows."""

from __future__ import annotations

import pytest

from lorakiln.toyworld import Mix, generate
from lorakiln.vision.crop_tags import crop_tags
from lorakiln.vision.crops import CropRules, plan_crop, plan_crops

TOY = CropRules(min_side=16)  # the toy world is 64x64


def _inside(box, size):
    return 0 <= box[0] < box[2] <= size[0] and 0 <= box[1] < box[3] <= size[1]


def _contains(outer, inner, slack=1):
    return (outer[0] <= inner[0] + slack and outer[1] <= inner[1] + slack
            and outer[2] >= inner[2] - slack and outer[3] >= inner[3] - slack)


def test_full_body_figures_give_three_closeups_inside_the_picture_around_the_head():
    samples = [s for s in generate(40, 7, mix=Mix(framing={"full_body": 1.0}, two_figures=0.0))]
    for s in samples:
        fig = s.boxes[0]
        plans = {p.framing: p for p in plan_crops(s.image.size, fig.person, fig.head, fig.halfbody, rules=TOY)}
        assert all(p.box is not None for p in plans.values()), plans
        for p in plans.values():
            assert _inside(p.box, s.image.size)
            assert _contains(p.box, fig.head)  # every close-up keeps the face
            w, h = p.box[2] - p.box[0], p.box[3] - p.box[1]
            assert max(w, h) <= 2.0 * min(w, h) + 1
        # each cut lower than the last, all above the feet
        bottoms = [plans[f].box[3] for f in ("portrait", "upper_body", "cowboy_shot")]
        assert bottoms == sorted(bottoms) and bottoms[-1] < fig.person[3], bottoms


def test_a_picture_already_at_a_framing_is_not_cropped_to_it_again():
    s = next(generate(1, 3, mix=Mix(framing={"portrait": 1.0}, two_figures=0.0)))
    fig = s.boxes[0]
    plans = {p.framing: p for p in plan_crops(s.image.size, fig.person, fig.head, fig.halfbody, rules=TOY)}
    assert plans["cowboy_shot"].box is None and "lower edge" in plans["cowboy_shot"].reason
    assert plans["portrait"].box is None and "already a portrait" in plans["portrait"].reason


def test_small_crops_and_missing_heads_are_skipped_with_reasons():
    size, person, head = (600, 900), (200, 50, 400, 850), (250, 50, 350, 150)
    small = plan_crop("portrait", size, person, head)  # default minimum 256 px
    assert small.box is None and "too small" in small.reason and "256" in small.reason
    assert plan_crop("portrait", size, person, None).reason == "no head found"
    ok = plan_crop("cowboy_shot", size, person, head)
    assert ok.box is not None and _inside(ok.box, size) and ok.box[3] < 850


def test_crops_shift_inside_the_picture_rather_than_shrink():
    size, person, head = (400, 1000), (0, 0, 300, 1000), (0, 0, 150, 150)  # figure at the top-left edge
    p = plan_crop("portrait", size, person, head, rules=CropRules(min_side=64))
    assert p.box[0] == 0 and p.box[1] == 0 and _inside(p.box, size)
    assert p.box[2] - p.box[0] >= 0.8 * 1.6 * 150  # the width it asked for, shifted


@pytest.mark.parametrize("framing,gone,stays", [
    ("portrait", {"black_shorts", "shoes", "pleated_skirt", "full_body"}, {"black_hoodie", "hairclip"}),
    ("upper_body", {"black_shorts", "shoes", "thighhighs"}, {"black_hoodie", "hairclip"}),
    ("cowboy_shot", {"shoes", "white_socks", "full_body"}, {"black_shorts", "thighhighs", "black_hoodie"}),
])
def test_crop_captions_lose_what_the_crop_cuts_away(framing, gone, stays):
    parent = ["kie_kiln", "1girl", "solo", "full_body", "black_hoodie", "hairclip", "black_shorts", "shoes",
              "pleated_skirt", "thighhighs", "white_socks"]
    tags, dropped = crop_tags(parent, framing)
    assert tags[-1] == framing and tags[:3] == ["kie_kiln", "1girl", "solo"]
    assert gone <= set(dropped) and not (stays & set(dropped)) and stays <= set(tags)


def test_toy_world_posts_agree_with_the_crop_caption_rules():
    """A toy render at a framing is tagged like a crop to it: no shorts or skirt above the waist."""
    for s in generate(60, 5, mix=Mix(two_figures=0.0, framing={"upper_body": 1.0, "portrait": 1.0})):
        tags, dropped = crop_tags(list(s.tags.general), s.scene.framing)
        assert not [t for t in dropped if t != s.scene.framing], (s.scene.framing, dropped)
