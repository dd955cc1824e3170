"""Every metric on constructed inputs whose right answer is worked out by hand (cosine differences)."""

import numpy as np
import pytest

from lorakiln.core.records import ImageRecord
from lorakiln.evaluate.dataset_tags import non_prompt_tags, outfit_tags, subject, tag_shares
from lorakiln.evaluate.descriptor import cosine_differences
from lorakiln.evaluate.metrics import METRICS, Condition, Context, Reference, Sample, compute
from lorakiln.evaluate.metrics.fidelity import calibrate, prototype
from lorakiln.evaluate.probes import PROBES, probe_set, render, requested_tags
from lorakiln.evaluate.recommend import Candidate, f_beta, recommend

V = lambda *x: np.array(x, dtype=np.float32)  # noqa: E731
REFS = np.stack([V(1, 0), V(1, 0), V(0, 1)])


def ctx(base=None, threshold=0.5, **ref):
    reference = Reference(features=REFS, **ref)
    thr, upper = calibrate(REFS, cosine_differences, threshold)
    return Context(reference, base, cosine_differences, thr, upper, 0.35, {p: PROBES.get(p) for p in PROBES.names()})


def S(probe, seed=1, feature=None, style=None, tags=None, border=None, requested=()):
    return Sample(probe, PROBES.get(probe).group, seed, tuple(requested), None if feature is None else V(*feature),
                  None if style is None else V(*style), tags, border)


def test_prototype_and_upper_bound_by_hand():
    p = prototype(REFS)[0]
    assert p == pytest.approx([2 / np.sqrt(5), 1 / np.sqrt(5)], abs=1e-6)  # (2/3, 1/3) renormalised to length 1
    thr, upper = calibrate(REFS, cosine_differences, 0.5)
    assert thr == 0.5 and upper == pytest.approx(2 / 3)  # 1 - 0.894 passes twice, 1 - 0.447 fails once


def test_calibrated_threshold_is_the_75th_percentile_of_reference_differences():
    refs = np.stack([V(1, 0), V(0.6, 0.8), V(0, 1)])  # pairwise differences 0.4, 1.0, 0.2
    thr, upper = calibrate(refs, cosine_differences, None)
    assert thr == pytest.approx(0.85)  # sorted off-diagonal [.2 .2 .4 .4 1 1] -> 75th percentile .4 + .75 * .6
    assert upper == 1.0
    assert calibrate(refs[:1], cosine_differences, None) == (None, None)


def test_fidelity_and_flexibility():
    cond = Condition("c", samples=[S("portrait", 1, (1, 0)), S("portrait", 2, (0, 1)),
                                   S("maid", 1, (1, 0)), S("sitting", 1, (1, 0))])
    out = compute(cond, ctx(), ["fidelity", "flexibility"])
    # same-rates 2/3 and 1/3 -> mean 1/2, divided by the upper bound 2/3
    assert out["fidelity"].value == pytest.approx(0.75)
    assert out["fidelity"].details["same_rate"] == pytest.approx(0.5)
    assert out["flexibility"].value == pytest.approx((2 / 3) / (2 / 3))
    assert out["flexibility"].details["groups"] == {"outfit": pytest.approx(1.0), "pose": pytest.approx(1.0)}


def test_leakage_ratio():
    cond = Condition("c", samples=[S("no_trigger", 1, (0, 1)), S("portrait", 1, (1, 0))])
    base = Condition("base", samples=[S("no_trigger", 1, (0, 1))])
    mv = compute(cond, ctx(base), ["leakage"])["leakage"]
    assert mv.value == pytest.approx((1 / 3) / (2 / 3))
    assert mv.details["base_same_rate"] == pytest.approx(1 / 3)


def test_adherence():
    cond = Condition("c", samples=[S("maid", tags={"maid": 0.9, "apron": 0.2}, requested=("maid", "apron")),
                                   S("sitting", tags={"sitting": 0.5}, requested=("sitting",)),
                                   S("portrait", tags={}, requested=("portrait",))])  # not a change probe
    mv = compute(cond, ctx(), ["adherence"])["adherence"]
    assert mv.value == pytest.approx(0.75) and mv.n == 2
    assert mv.details["groups"] == {"outfit": 0.5, "pose": 1.0}


def test_style_bleed_paired_against_the_base_and_toward_the_dataset():
    base = Condition("base", samples=[S("landscape", 1, style=(1, 0)), S("landscape", 2, style=(0, 1))])
    cond = Condition("c", samples=[S("landscape", 1, style=(0.6, 0.8)), S("landscape", 2, style=(0, 1))])
    mv = compute(cond, ctx(base, styles=np.stack([V(0, 1)])), ["style_bleed"])["style_bleed"]
    assert mv.details["natural_variation"] == pytest.approx(1.0)
    assert mv.value == pytest.approx(0.2)  # paired differences 0.4 and 0 over a natural variation of 1
    assert mv.details["toward_dataset"] == pytest.approx(0.8)  # (1 - .2 + 0 - 0) / 2 over a mean of .5


def test_background_bleed():
    base = Condition("base", samples=[S("city", 1, border=8.0), S("city", 2, border=5.0)])
    cond = Condition("c", samples=[S("city", 1, border=2.0, tags={"simple_background": 0.9}),
                                   S("city", 2, border=10.0, tags={})])
    mv = compute(cond, ctx(base), ["background_bleed"])["background_bleed"]
    assert mv.value == pytest.approx((0.75 + 0.0) / 2)
    assert mv.details["flat_tag_rate"] == 0.5 and mv.details["base_flat_tag_rate"] is None


def test_view_bias_against_dataset_and_base():
    samples = [S("portrait", 1, tags={"from_behind": 0.9}), S("maid", 1, tags={"profile": 0.5}),
               S("sitting", 1, tags={}), S("smile", 1, tags={"from_side": 0.2}),
               S("from_behind", 1, tags={"from_behind": 0.99})]  # asks for the view: not counted
    base = Condition("base", samples=[S("portrait", 1, tags={}), S("maid", 1, tags={})])
    c = ctx(base, tag_share={"from_behind": 0.1, "from_side": 0.05, "profile": 0.02})
    mv = compute(Condition("c", samples=samples), c, ["view_bias"])["view_bias"]
    assert mv.value == 0.5 and mv.n == 4
    assert mv.details["back"] == 0.25 and mv.details["side"] == 0.25
    assert mv.details["dataset"] == pytest.approx(0.15) and mv.details["base"] == 0.0
    assert mv.details["excess"] == pytest.approx(0.35)


def test_outfit_lockin():
    samples = [S("maid", 1, tags={"capelet": 0.8, "maid": 0.9}, requested=("maid",)),
               S("bikini", 1, tags={"bikini": 0.9}, requested=("bikini",)), S("portrait", 1, tags={"capelet": 1})]
    mv = compute(Condition("c", samples=samples), ctx(outfit_tags=["capelet", "necktie"]),
                 ["outfit_lockin"])["outfit_lockin"]
    assert mv.value == pytest.approx(0.25)
    assert mv.details["per_tag"] == {"capelet": 0.5, "necktie": 0.0}
    none = compute(Condition("c", samples=samples), ctx(), ["outfit_lockin"])["outfit_lockin"]
    assert none.value is None and "outfit unknown" in none.note


def test_diversity():
    base = Condition("base", samples=[S("portrait", 1, style=(1, 0)), S("portrait", 2, style=(0, 1))])
    cond = Condition("c", samples=[S("portrait", 1, style=(1, 0)), S("portrait", 2, style=(0.6, 0.8))])
    assert compute(cond, ctx(base), ["diversity"])["diversity"].value == pytest.approx(0.4)


def test_unmet_needs_give_a_note_not_a_number():
    cond = Condition("c", samples=[S("maid", 1, (1, 0), tags=None, requested=("maid",))])
    out = compute(cond, Context(Reference()), None)
    assert set(out) == set(METRICS.names())
    assert out["adherence"].value is None and "no tagger" in out["adherence"].note
    assert out["fidelity"].value is None and "embedder" in out["fidelity"].note
    assert out["style_bleed"].value is None and "base" in out["style_bleed"].note


def test_recommend_f_beta_and_reason():
    assert f_beta(1.0, 0.5, 1.0) == pytest.approx(2 / 3)
    a = Candidate("k-000004.safetensors", 4, 1.0, {"fidelity": 0.95, "adherence": 0.2, "outfit_lockin": 0.6})
    b = Candidate("k-000004.safetensors", 4, 0.8, {"fidelity": 0.80, "adherence": 0.7, "outfit_lockin": 0.1})
    c = Candidate("k-000002.safetensors", 2, 1.0, {"fidelity": 0.30, "adherence": 0.9, "outfit_lockin": 0.0})
    rec = recommend([a, b, c], beta=2.0)
    # versatility parts: a (0.2 + 0.4)/2 = .3, b (.7 + .9)/2 = .8, c .95
    assert a.versatility == pytest.approx(0.3) and b.versatility == pytest.approx(0.8)
    assert a.score == pytest.approx(f_beta(0.95, 0.3, 2.0)) and b.score == pytest.approx(f_beta(0.8, 0.8, 2.0))
    assert (rec.checkpoint, rec.weight) == ("k-000004.safetensors", 0.8)
    assert "k-000004.safetensors @ 0.8" in rec.reason and "more faithful" in rec.reason
    assert [x.weight for x in rec.ranking][:1] == [0.8]
    floor = recommend([a, b, c], beta=2.0, min_fidelity=0.9)
    assert (floor.checkpoint, floor.weight) == ("k-000004.safetensors", 1.0)
    assert b.score is not None and b.excluded == "fidelity 0.80 is below [eval.recommend] min_fidelity 0.9"
    assert any(f["metric"] == "outfit_lockin" for f in floor.findings)


def test_dataset_tags_outfit_and_subject():
    shares = tag_shares({"kafka_hsr": 10, "1girl": 10, "solo": 9, "purple hair": 10, "long_hair": 8,
                         "red_capelet": 7, "necktie": 6, "smile": 6, "boots": 1}, 10)
    assert shares["purple_hair"] == 1.0 and shares["boots"] == 0.1
    assert subject(shares) == "1girl"
    assert outfit_tags(shares, ["kafka_hsr"], n=3) == ["red_capelet", "necktie"]  # core, generic, rare left out
    # character, copyright and artist tags (known from the records' categories) are no outfit
    shares.update({"kafka_(honkai:_star_rail)": 1.0, "honkai:_star_rail": 1.0, "some_artist": 0.9, "highres": 0.9})
    records = [ImageRecord(id="d-1", source="danbooru", tags={
        "general": ["red_capelet"], "character": ["kafka_(honkai:_star_rail)"], "copyright": ["honkai:_star_rail"],
        "artist": ["some_artist"], "meta": ["highres"]}),
        ImageRecord(id="l-1", source="local", tags={"caption": ["necktie", "sunglasses"]})]
    assert non_prompt_tags(records) == {"kafka_(honkai:_star_rail)", "honkai:_star_rail", "some_artist", "highres"}
    assert outfit_tags(shares, ["kafka_hsr"], n=3, exclude=non_prompt_tags(records)) == ["red_capelet", "necktie"]


def test_places_and_backgrounds_are_neither_outfit_nor_reinforcement_tags():
    """The toy demo's card listed `window, wooden floor, green background` as reinforcement tags:
    where the picture is, not what she wears."""
    from collections import Counter

    from lorakiln.evaluate.dataset_tags import is_scene
    from lorakiln.merge.card import reinforcement_tags

    freq = Counter({"black hoodie": 26, "window": 20, "wooden_floor": 20, "green background": 18,
                    "hairclip": 17, "Tree": 16, "hat": 8})
    assert reinforcement_tags(freq, set()) == ["black hoodie", "hairclip", "hat"]
    shares = tag_shares(freq, 30)
    assert outfit_tags(shares, ["kie_kiln"]) == ["black_hoodie", "hairclip", "hat"]
    assert is_scene("pink_background") and is_scene("window") and not is_scene("black_hoodie")


def test_probe_sets_and_rendering():
    quick = probe_set("quick")
    assert [p.name for p in quick] == sorted(p.name for p in quick) and len(quick) == 6
    assert {p.group for p in probe_set("standard")} >= {"fidelity", "outfit", "pose", "view", "expression",
                                                         "background", "no_trigger", "unrelated"}
    assert len(probe_set("full")) > len(probe_set("standard")) > len(quick)
    only = probe_set("full", only=["outfit", "portrait"])
    assert {p.group for p in only} == {"outfit", "fidelity"}
    dataset = PROBES.get("dataset")
    assert render(dataset, ["kafka_hsr"], "1girl", ["red_capelet", "necktie"], "masterpiece") == \
        "masterpiece, kafka_hsr, 1girl, solo, red capelet, necktie"
    assert requested_tags(dataset, ["red_capelet"]) == ("red_capelet",)
    assert render(PROBES.get("no_trigger"), ["kafka_hsr"], "1boy", []) == "1boy, solo, portrait, looking at viewer"
    extra = probe_set("quick", extra=[{"name": "glasses", "group": "outfit", "prompt": "{trigger}, glasses",
                                       "tags": ["glasses"]}])
    assert extra[-1].tags == ("glasses",)


def test_no_effect_finding_only_when_every_candidate_equals_the_base():
    from lorakiln.evaluate.recommend import no_effect

    base = {"fidelity": 0.47, "adherence": 0.5, "diversity": 1.0, "leakage": None}
    same = [Candidate("k-000001.safetensors", 1, w, {"fidelity": 0.47, "adherence": 0.5, "diversity": 1.0})
            for w in (0.6, 1.0)]
    found = no_effect(same, base)
    assert found and found["metric"] == "effect" and "fidelity, adherence, diversity" in found["message"]
    moved = same + [Candidate("k-000002.safetensors", 2, 1.0, {"fidelity": 0.52, "adherence": 0.5,
                                                               "diversity": 1.0})]
    assert no_effect(moved, base) is None
    assert no_effect([], base) is None and no_effect(same, {"leakage": 0.1}) is None
