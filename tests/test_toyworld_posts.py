"""The toy world's posts, characters and sampling: Danbooru-spelled tags by category with
counts, characters with a pretraining/held-out split, controllable attribute shares, and posts
a real local booru replay serves."""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from dataclasses import replace

import pytest

from lorakiln.demo.booru_server import BooruReplay
from lorakiln.toyworld import (CHARACTERS, DEMO, HELD_OUT, PRETRAIN, Mix, danbooru_post, generate, replay_post,
                               vocab)
from lorakiln.toyworld.characters import character
from lorakiln.toyworld.sampling import anonymous_fixed

# Every general tag the world uses, each checked against a WD v3 tagger's selected_tags.csv
# (Danbooru spelling). A new tag must be checked the same way before it is added here.
KNOWN_DANBOORU = set("""
1girl 2girls aqua_eyes armor black_armor black_dress black_hair black_hoodie black_one-piece_swimsuit
black_sailor_collar black_shorts black_skirt blonde_hair blue_armor blue_background blue_dress blue_eyes
blue_hair blue_hoodie blue_one-piece_swimsuit blue_sailor_collar blue_skirt blue_sky brown_eyes brown_hair
cloud cowboy_shot dark-skinned_female dark_skin day dress from_behind from_side full_body glasses
green_background green_dress green_eyes green_hair green_hoodie green_one-piece_swimsuit green_sailor_collar
green_skirt grey_background hair_ribbon hairclip hat hoodie indoors long_hair multiple_girls one-piece_swimsuit
orange_hair outdoors pale_skin pink_background pink_dress pink_eyes pink_hair pink_hoodie
pink_one-piece_swimsuit pink_sailor_collar pink_skirt ponytail portrait purple_dress purple_eyes purple_hair
purple_hoodie purple_one-piece_swimsuit purple_sailor_collar purple_skirt red_armor red_dress red_eyes
red_hair red_hoodie red_one-piece_swimsuit red_sailor_collar red_skirt school_uniform serafuku short_hair
shorts simple_background sky solo swimsuit tan twintails upper_body white_armor white_background white_dress
white_hair white_hoodie white_one-piece_swimsuit white_sailor_collar white_skirt window wooden_floor
yellow_background yellow_dress yellow_eyes yellow_hoodie
""".split())
TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]*(_\([a-z0-9_]+\))?$")


def test_vocabulary_is_danbooru_spelled():
    assert vocab.all_general_tags() <= KNOWN_DANBOORU
    for c in CHARACTERS:
        assert TAG.match(c.name) and c.name.endswith("_(kiln)")
    assert all(TAG.match(vocab.style_tag(s)) for s in vocab.STYLES)


def test_posts_have_counts_categories_and_only_known_tags():
    seen = Counter()
    for s in generate(120, seed=7, mix=Mix(two_figures=0.3)):
        t, sc = s.tags, s.scene
        assert set(t.general) <= vocab.all_general_tags() and list(t.general) == sorted(t.general)
        n = len(sc.figures)
        assert ({"1girl", "solo"} <= set(t.general)) == (n == 1)
        assert ({"2girls", "multiple_girls"} <= set(t.general)) == (n == 2)
        assert [f for f in vocab.FRAMINGS if f in t.general] == [sc.framing]
        assert set(t.character) == {f.character for f in sc.figures if f.character}
        assert t.copyright == ("kiln_world",) and t.artist == (vocab.style_tag(sc.style),)
        assert t.meta == ("lowres",) and t.rating == "g"
        for f in sc.figures:
            eyes = vocab.eye_colour_tag(f.eye_colour) in t.general
            assert eyes or f.view == "from_behind"
            if n == 1:
                assert eyes == (f.view != "from_behind")
        seen[n] += 1
    assert seen[1] and seen[2]


def test_tags_follow_what_the_framing_shows():
    def akane(framing):
        mix = Mix(default_outfit=1.0, two_figures=0.0, anonymous=0.0, framing={framing: 1.0})
        return next(generate(1, seed=0, characters=["akane_(kiln)"], mix=mix))

    s = akane("portrait")
    assert "blue_sailor_collar" in s.tags.general and "blue_skirt" not in s.tags.general
    s = akane("full_body")
    assert {"blue_sailor_collar", "blue_skirt"} <= set(s.tags.general)


def test_characters_and_split():
    assert len(CHARACTERS) == 14 and len(PRETRAIN) == 10 and len(HELD_OUT) == 4
    assert DEMO.name == "kie_(kiln)" and DEMO.held_out
    assert len({c.fixed for c in CHARACTERS}) == len(CHARACTERS)
    for h in HELD_OUT:
        for c in CHARACTERS:
            if c is not h:
                assert sum(a != b for a, b in zip(h.fixed, c.fixed)) >= 2, (h.name, c.name)
        for i, value in enumerate(h.fixed):  # each feature is seen in pretraining, the combination is not
            assert value in {c.fixed[i] for c in PRETRAIN}, (h.name, value)
    for c in CHARACTERS:
        assert c.outfit_colour in vocab.OUTFIT_COLOUR_CHOICES[c.outfit]
    with pytest.raises(ValueError, match="unknown toy-world character 'nobody'"):
        character("nobody")


def test_a_character_keeps_its_fixed_features_across_outfits_and_views():
    looks = [s.scene.figures[0] for s in generate(60, seed=2, characters=["kie_(kiln)"],
                                                  mix=Mix(anonymous=0.0, two_figures=0.0))]
    assert {(f.hair_style, f.hair_colour, f.eye_colour, f.skin) for f in looks} == {DEMO.fixed}
    assert len({f.outfit for f in looks}) >= 4 and len({f.view for f in looks}) == 3
    assert {f.character for f in looks} == {"kie_(kiln)"}


def test_anonymous_figures_never_look_like_a_named_character():
    import random
    rng = random.Random(0)
    taken = {c.fixed for c in CHARACTERS}
    assert not any(anonymous_fixed(rng) in taken for _ in range(2000))
    samples = list(generate(30, seed=1, characters=[]))
    assert all(s.tags.character == () for s in samples)


def test_mix_controls_the_shares():
    backs = [s.scene.figures[0].view for s in generate(40, seed=0, mix=Mix(view={"from_behind": 1.0},
                                                                         two_figures=0.0))]
    assert set(backs) == {"from_behind"}
    two = list(generate(20, seed=0, mix=Mix(two_figures=1.0)))
    assert all(len(s.boxes) == 2 and "2girls" in s.tags.general for s in two)
    assert all(s.scene.framing in vocab.TWO_FIGURE_FRAMINGS for s in two)
    views = Counter(s.scene.figures[0].view for s in generate(200, seed=0, mix=Mix(two_figures=0.0)))
    assert 0.1 < views["from_behind"] / 200 < 0.3  # the default 20 % share
    with pytest.raises(ValueError, match=r"Mix.view .*unknown: back"):
        next(generate(1, mix=Mix(view={"back": 1.0})))
    with pytest.raises(ValueError, match="Mix.two_figures = 1.5"):
        next(generate(1, mix=replace(Mix(), two_figures=1.5)))


def test_danbooru_post_fields():
    s = next(generate(1, seed=5, characters=["kie_(kiln)"], mix=Mix(anonymous=0.0, two_figures=0.0)))
    p = danbooru_post(101, s.image, s.tags)
    assert p["tag_string_character"] == "kie_(kiln)" and p["tag_string_copyright"] == "kiln_world"
    assert p["tag_string_general"].split() == list(s.tags.general) and p["rating"] == "g"
    assert set(p["tag_string"].split()) == set(s.tags.all()) and p["tag_count"] == len(s.tags.all())
    assert (p["image_width"], p["image_height"], p["file_ext"]) == (64, 64, "png")


def test_posts_are_served_by_the_local_booru_replay():
    posts = [replay_post(200 + i, s.image, s.tags)
             for i, s in enumerate(generate(8, seed=9, characters=["kie_(kiln)", "akane_(kiln)"],
                                            mix=Mix(anonymous=0.0, two_figures=0.0)))]
    want = {p.id for p in posts if "kie_(kiln)" in p.tags["character"]}
    with BooruReplay(posts, site="danbooru") as booru:
        with urllib.request.urlopen(f"{booru.url}/posts.json?tags=kie_(kiln)+solo&limit=50") as r:
            got = json.load(r)
        assert {p["id"] for p in got} == want and want
        assert all("kie_(kiln)" == p["tag_string_character"] and "kiln_world" == p["tag_string_copyright"]
                   for p in got)
        with urllib.request.urlopen(got[0]["file_url"]) as r:
            assert r.read()[:8] == b"\x89PNG\r\n\x1a\n"
