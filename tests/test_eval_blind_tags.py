"""Every metric compared with the base model says "cannot measure" when it cannot tell the base model
from the LoRA, and a score made only of metrics that penalise change picks nothing (issue 10, item 12:
the demo showed adherence 0.50, view bias 1.00 and outfit lock-in 0.00 for the base model and every
checkpoint, and recommended the checkpoint with the least effect)."""

import pytest

from lorakiln.evaluate.blind import BLIND_RULES, withdraw_blind
from lorakiln.evaluate.metrics import METRICS, Condition, Context, Reference, Sample, compute
from lorakiln.evaluate.metrics.base import MetricValue
from lorakiln.evaluate.probes import PROBES
from lorakiln.evaluate.recommend import Candidate, recommend
from lorakiln.evaluate.report import ReportData, render_html, summary_json


def _mv(name, value, **details):
    return {name: MetricValue(value, 4, details=details),
            "effect": MetricValue(0.05, 4, details={"delta_norm": 1.0})}


def _withdraw(name, base_value, cand_values, base_details=None, cand_details=None):
    base = _mv(name, base_value, **(base_details or {}))
    base["effect"] = MetricValue(0.0, 4, details={"delta_norm": 0.0})
    cands = [_mv(name, v, **(cand_details or {})) for v in cand_values]
    notes = withdraw_blind(base, cands, "the tiny embedder", "tiny-tagger")
    return notes, base, cands


def test_every_metric_has_a_stated_rule_for_the_base_comparison():
    assert set(BLIND_RULES) == set(METRICS.names())


@pytest.mark.parametrize("name,value", [("adherence", 0.5), ("adherence", 0.0), ("view_bias", 1.0),
                                        ("view_bias", 0.25), ("outfit_lockin", 0.4)])
def test_a_tag_metric_equal_for_the_base_model_and_every_checkpoint_cannot_measure(name, value):
    notes, base, cands = _withdraw(name, value, [value, value])
    assert len(notes) == 1 and notes[0].startswith(f"cannot measure: {name.replace('_', ' ')} is {value:.2f}")
    assert "tiny-tagger" in notes[0]
    for m in [base, *cands]:
        assert m[name].value is None and m[name].note == notes[0]
        assert m[name].details["unseparated_value"] == value


def test_a_tag_metric_that_separates_or_is_saturated_stays():
    assert _withdraw("adherence", 0.5, [0.5, 0.75])[0] == []  # one checkpoint differs: it sees something
    assert _withdraw("adherence", 1.0, [1.0, 1.0])[0] == []  # every asked tag found everywhere: a result
    assert _withdraw("view_bias", 0.0, [0.0, 0.0], {"asked_seen": 1.0}, {"asked_seen": 0.5})[0] == []
    assert _withdraw("view_bias", 0.0, [0.0, 0.0])[0] == []  # no view probe: nothing says it is blind


def test_a_common_zero_is_blind_when_the_tagger_misses_what_the_prompt_asks_for():
    # outfit lock-in 0 everywhere, and the dataset probe asks for the training outfit, which the
    # tagger finds in no picture, the base model's included: 0 says nothing about lock-in
    notes, base, cands = _withdraw("outfit_lockin", 0.0, [0.0, 0.0], {"asked_seen": 0.0}, {"asked_seen": 0.0})
    assert len(notes) == 1 and "never finds" in notes[0] and cands[0]["outfit_lockin"].value is None
    seen = _withdraw("outfit_lockin", 0.0, [0.0, 0.0], {"asked_seen": 0.0}, {"asked_seen": 1.0})
    assert seen[0] == [] and seen[2][0]["outfit_lockin"].value == 0.0  # it can see the outfit: 0 is real


def test_metrics_measured_against_the_base_keep_a_common_value():
    # style and background bleed, diversity and effect are differences from (ratios to) the base
    # model's pictures: the base model's own value is 0 (1) by construction, and a LoRA that leaves
    # unrelated prompts alone really has a style bleed of 0
    for name, v in [("style_bleed", 0.0), ("background_bleed", 0.0), ("diversity", 1.0)]:
        assert _withdraw(name, v, [v, v])[0] == []


def S(probe, tags, seed=1, requested=None):
    p = PROBES.get(probe)
    return Sample(probe, p.group, seed, tuple(requested if requested is not None else p.tags), tags=tags)


def test_tag_metrics_report_whether_the_tagger_finds_what_was_asked():
    ctx = Context(Reference(outfit_tags=["red_capelet", "coat"]), None)
    asked = ("red_capelet", "coat")
    blind = Condition("c", samples=[S("dataset", {}, requested=asked), S("maid", {"maid": 0.9}),
                                    S("portrait", {}), S("from_behind", {"from_side": 0.9})])
    out = compute(blind, ctx, ["outfit_lockin", "view_bias"])
    assert out["outfit_lockin"].details["asked_seen"] == 0.0 and out["view_bias"].details["asked_seen"] == 0.0
    sees = Condition("c", samples=[S("dataset", {"coat": 0.9}, requested=asked), S("maid", {"maid": 0.9}),
                                   S("portrait", {}), S("from_behind", {"from_behind": 0.9})])
    out = compute(sees, ctx, ["outfit_lockin", "view_bias"])
    assert out["outfit_lockin"].details["asked_seen"] == 1.0 and out["view_bias"].details["asked_seen"] == 1.0
    alone = compute(Condition("c", samples=[S("maid", {}), S("portrait", {})]), ctx, ["outfit_lockin", "view_bias"])
    assert alone["outfit_lockin"].details["asked_seen"] is None and alone["view_bias"].details["asked_seen"] is None


def _demo_like():
    """The demo's numbers: nothing that sees the character measured, style bleed grows with the effect."""
    return [Candidate(f"k-{i}.safetensors", i, w, {"effect": eff, "style_bleed": bleed, "fidelity": None,
                                                   "flexibility": None, "adherence": None},
                      {"effect": {"delta_norm": 1.0 + i}})
            for i, (w, eff, bleed) in enumerate([(0.6, 0.0176, 0.0019), (1.0, 0.0285, 0.0043),
                                                 (0.6, 0.0326, 0.0064), (1.0, 0.0452, 0.0117)], 1)]


def test_penalties_alone_do_not_pick_the_checkpoint_with_the_least_effect():
    cands = _demo_like()
    rec = recommend(cands)
    assert rec.checkpoint is None and rec.weight is None and rec.score is None
    assert rec.status == "cannot_judge"
    assert "no metric here can see the character" in rec.reason
    assert [c.checkpoint for c in rec.ranking] == [c.checkpoint for c in cands]  # still listed, in order
    assert all(c.score is None and c.versatility is not None and not c.excluded for c in rec.ranking)
    assert rec.findings and rec.findings[0]["metric"] == "fidelity"
    assert "cannot be judged" in rec.findings[0]["message"]


def test_one_character_metric_is_enough_to_judge():
    cands = _demo_like()
    for c, flex in zip(cands, (0.2, 0.5, 0.8, 0.4)):
        c.values["flexibility"] = flex
    rec = recommend(cands)
    assert rec.status == "recommended" and rec.checkpoint == "k-3.safetensors"


def test_report_and_summary_say_the_pick_cannot_be_judged():
    rec = recommend(_demo_like())
    rows = [{"checkpoint": c.checkpoint, "epoch": c.epoch, "weight": c.weight,
             "metrics": {"effect": {"value": c.values["effect"], "n": 1}}} for c in rec.ranking]
    data = ReportData("run", {}, rows, None, rec)
    doc = summary_json(data)
    assert doc["recommended"]["checkpoint"] is None and doc["recommended"]["status"] == "cannot_judge"
    assert all(r["score"] is None for r in doc["ranking"]) and len(doc["ranking"]) == 4
    html = render_html(data)
    assert 'class="rec"' not in html and "cannot judge" in html.lower()
    assert "no metric here can see the character" in html
