"""A LoRA that does nothing is never recommended; a metric that cannot see the character says so;
summary.json, report, card and CLI name the same quantities alike (issue 10, item 17)."""

import json
import re

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lorakiln.core.progress import NullProgress
from lorakiln.evaluate.blind import withdraw_blind
from lorakiln.evaluate.descriptor import decode_thumbnail, encode_thumbnail, pixel_difference
from lorakiln.evaluate.lora_norm import delta_norm
from lorakiln.evaluate.metrics import Condition, Context, Reference, Sample, compute
from lorakiln.evaluate.recommend import Candidate, no_effect, recommend
from lorakiln.services.evaluate import run_eval
from lorakiln.services.project import init_project
from lorakiln.services.runs import run_checkpoints
from lorakiln.train.families import FAMILIES
from tiny_ccip import make_ccip_folder
from tiny_run import lora_file, make_dataset, make_run
from tiny_tagger import make_tagger_folder

RUN = "20260101-000000-kiln"
ZERO, TRAINED = "kiln-000001.safetensors", "kiln-000002.safetensors"


def zero_up_weights(path):
    """The file with every lora_up set to zero: a LoRA that does nothing (its metadata unchanged)."""
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    tensors = {k: v * 0 if "lora_up" in k else v for k, v in load_file(str(path)).items()}
    save_file(tensors, str(path), meta)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    fam = FAMILIES.get("tiny-sd15")
    p = init_project(tmp_path_factory.mktemp("fx") / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
    make_dataset(p.root)
    make_tagger_folder(p.root / "tagger")
    make_ccip_folder(p.root / "ccip")
    p.set_section("tag", {"model": "./tagger"})
    p.set_section("eval", {"steps": 2, "weights": [1.0]})
    run = make_run(p.runs_dir, fam, fam.load("tiny-sd15"), scale=0.3, final=False)
    zero_up_weights(run / ZERO)
    return p


def _eval(proj, checkpoints="all", **models):
    cfg = proj.resolve("eval", {"checkpoints": checkpoints, "probes": {"probe_set": "quick", "seeds": [1, 2]},
                                "models": {"ccip_local": str(proj.root / "ccip"), **models}})
    return run_eval(proj, RUN, cfg, NullProgress())


def _metrics(proj):
    doc = json.loads((proj.runs_dir / RUN / "eval" / "metrics.json").read_text())
    return doc, {c["checkpoint"]: c["metrics"] for c in doc["candidates"]}


def test_zero_lora_is_never_recommended_next_to_a_trained_one(proj, cli):
    assert delta_norm(proj.runs_dir / RUN / ZERO) == 0.0 and delta_norm(proj.runs_dir / RUN / TRAINED) > 1
    code, text = cli("eval", "--probes", "quick", "--seeds", "1,2", "--ccip", proj.root / "ccip", cwd=proj.root)
    assert code == 0, text
    assert f"recommended: {TRAINED}" in text and f"recommended: {ZERO}" not in text
    summary = json.loads((proj.runs_dir / RUN / "eval" / "summary.json").read_text())
    assert summary["recommended"]["checkpoint"] == TRAINED
    zero = next(r for r in summary["ranking"] if r["checkpoint"] == ZERO)
    assert zero["score"] is None and zero["effect"] == 0.0 and "no measured effect" in zero["excluded"]
    doc, by = _metrics(proj)
    assert by[ZERO]["effect"]["value"] == 0.0 and by[ZERO]["effect"]["details"]["delta_norm"] == 0.0
    assert by[TRAINED]["effect"]["value"] > 0.02 and by[TRAINED]["effect"]["details"]["delta_norm"] > 1
    assert doc["base"]["metrics"]["effect"]["value"] == 0.0  # the base model against itself


def test_a_metric_that_cannot_see_the_character_says_so(proj, cli):
    # a same-character threshold of 1.9 (of 2) calls every picture the character: the base model,
    # the zero LoRA and the trained one all score 1.00, so fidelity cannot tell anything apart
    cfg = proj.root / "project.toml"
    before = cfg.read_text()
    cfg.write_text(before + "\n[eval.models]\nccip_threshold = 1.9\n")
    try:
        code, text = cli("eval", "--probes", "quick", "--seeds", "1,2", "--ccip", proj.root / "ccip",
                         cwd=proj.root)
    finally:
        cfg.write_text(before)
    assert code == 0, text
    assert "cannot measure: fidelity is 1.00 for the base model and for every checkpoint alike" in text
    assert "fidelity 1.00" not in text.replace("fidelity is 1.00", "")
    doc, by = _metrics(proj)
    for m in [doc["base"]["metrics"], by[ZERO], by[TRAINED]]:
        assert m["fidelity"]["value"] is None and m["fidelity"]["note"].startswith("cannot measure")
        assert m["fidelity"]["details"]["unseparated_value"] == 1.0
    # the tiny tagger finds neither the asked outfit, maid nor from_behind in any picture, the base
    # model's included: adherence, view bias and outfit lock-in cannot tell anything apart either
    for name in ("adherence", "view_bias", "outfit_lockin"):
        assert all(m[name]["value"] is None and m[name]["note"].startswith("cannot measure")
                   for m in [doc["base"]["metrics"], by[ZERO], by[TRAINED]]), name
    # what is left (style bleed) only penalises change: it would pick the LoRA that changes least
    summary = json.loads((proj.runs_dir / RUN / "eval" / "summary.json").read_text())
    rec = summary["recommended"]
    assert rec["checkpoint"] is None and rec["status"] == "cannot_judge"
    assert "no metric here can see the character" in rec["reason"]
    assert "no recommendation: the pick cannot be judged" in text and "recommended:" not in text
    assert all(r["fidelity"] is None and r["score"] is None for r in summary["ranking"])
    assert {r["checkpoint"] for r in summary["ranking"]} == {ZERO, TRAINED}  # still listed
    assert summary["findings"][0]["message"].startswith("the pick cannot be judged")
    html = (proj.runs_dir / RUN / "eval" / "report.html").read_text()
    assert "cannot measure: fidelity" in html and 'class="rec"' not in html
    assert "Cannot judge the pick" in html and '>cannot measure</td>' in html


def test_only_a_zero_lora_gives_no_recommendation_anywhere(proj, cli):
    out = _eval(proj, checkpoints="1")
    rec = out.doc["recommended"]
    assert rec["checkpoint"] is None and rec["weight"] is None
    assert "no checkpoint has a measured effect" in rec["reason"]
    assert out.doc["findings"][0]["metric"] == "effect"
    assert "no recommendation" in out.summary()
    html = (out.out_dir / "report.html").read_text()
    assert '<div class="norec"><h2>No recommendation' in html and 'class="rec"' not in html
    code, text = cli("card", RUN, "--project", proj.root)
    assert code == 0, text
    card = (proj.runs_dir / RUN / "card.md").read_text()
    assert "No recommended weight: no checkpoint has a measured effect" in card
    assert "None" not in card.split("## How to use")[1].split("##")[0]  # no "weight None", no ":None>"
    assert "Recommended weight:" not in card


def test_negligible_weights_have_no_effect_on_the_pictures(tmp_path):
    """Non-zero but negligible weights: ‖ΔW‖ > 0, yet the pictures are the base model's (pixel check)."""
    fam = FAMILIES.get("tiny-sd15")
    p = init_project(tmp_path / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
    make_dataset(p.root)
    p.set_section("eval", {"steps": 2, "weights": [1.0]})
    make_run(p.runs_dir, fam, fam.load("tiny-sd15"), epochs=1, scale=1e-6, final=False)
    assert 0 < delta_norm(p.runs_dir / RUN / ZERO) < 1e-3
    cfg = p.resolve("eval", {"probes": {"probe_set": "quick", "seeds": [1]}, "models": {"embedder": "descriptor"}})
    out = run_eval(p, RUN, cfg, NullProgress())
    assert out.doc["recommended"]["checkpoint"] is None
    assert "grey levels on average" in out.doc["ranking"][0]["excluded"]


def test_summary_names_the_same_quantities_as_the_report(proj):
    out = _eval(proj)
    _, by = _metrics(proj)
    for r in out.doc["ranking"]:
        assert "flexibility_score" not in r
        assert r["flexibility"] == by[r["checkpoint"]]["flexibility"]["value"]  # the metric, as in the report
        assert r["fidelity"] == by[r["checkpoint"]]["fidelity"]["value"]
    best = next(r for r in out.doc["ranking"] if r["checkpoint"] == out.doc["recommended"]["checkpoint"])
    said = re.search(r"flexibility (\d\.\d\d)", out.doc["recommended"]["reason"])
    if said:  # the reason's "flexibility" is the metric too, never the score's second term
        assert float(said.group(1)) == pytest.approx(best["flexibility"], abs=0.006)
    assert best["versatility"] is not None and best["score"] is not None


def test_final_checkpoint_takes_its_epoch_from_its_metadata(tmp_path):
    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    run = tmp_path / "run"
    run.mkdir()
    lora_file(run / "kiln-000002.safetensors", fam, comps, seed=2, extra={"ss_epoch": "2", "ss_steps": "8"})
    lora_file(run / "kiln.safetensors", fam, comps, seed=3, extra={"ss_epoch": "3", "ss_steps": "12"})
    lora_file(run / "kiln-step00000010.safetensors", fam, comps, seed=4, extra={"ss_epoch": "3"})
    found = run_checkpoints(run)
    assert [(c.label, c.epoch, c.step) for c in found] == [("epoch 2", 2, None), ("step 10", 3, 10),
                                                          ("final", 3, 12)]
    assert found[-1].title == "final (epoch 3)" and found[0].title == "epoch 2"


# -- the parts, on constructed values ------------------------------------------------------------

def _px(v: int) -> np.ndarray:
    return np.full((32, 32, 3), v, dtype=np.uint8)


def _cond(key, values, norm=None):
    return Condition(key, None if key == "base" else f"{key}.safetensors", 1, 1.0,
                     [Sample("portrait", "fidelity", s, pixels=_px(v)) for s, v in enumerate(values, 1)],
                     delta_norm=norm)


def test_effect_metric_by_hand():
    assert decode_thumbnail(encode_thumbnail(_px(7)))[0, 0, 0] == 7 and decode_thumbnail("AAAA") is None
    assert pixel_difference(_px(0), _px(51)) == pytest.approx(0.2)
    base = _cond("base", [100, 151])
    ctx = Context(Reference(), base)
    moved = compute(_cond("a", [110, 161], 2.0), ctx, ["effect"])["effect"]
    assert moved.value == pytest.approx(10 / 255) and moved.details["relative"] == pytest.approx(10 / 51)
    assert not moved.details["none"] and moved.note == ""
    same = compute(_cond("z", [100, 151], 0.0), ctx, ["effect"])["effect"]
    assert same.value == 0.0 and same.details["none"] and same.note.startswith("no effect")
    assert compute(base, ctx, ["effect"])["effect"].note == ""  # the control itself is no finding


def test_recommend_skips_candidates_without_effect():
    idle = Candidate("zero.safetensors", 1, 1.0, {"effect": 0.0, "fidelity": 1.0, "style_bleed": 0.0},
                     {"effect": {"delta_norm": 0.0}})
    live = Candidate("live.safetensors", 2, 1.0, {"effect": 0.1, "fidelity": 1.0, "style_bleed": 0.2},
                     {"effect": {"delta_norm": 3.0}})
    rec = recommend([idle, live])
    assert rec.checkpoint == "live.safetensors" and idle.score is None and "‖ΔW‖ = 0" in idle.excluded
    alone = recommend([idle])
    assert alone.checkpoint is None and "no checkpoint has a measured effect" in alone.reason
    found = no_effect([idle], {})
    assert found["metric"] == "effect" and "weights are zero" in found["message"]
    assert no_effect([idle, live], {}) is None


def test_withdraw_blind_only_when_the_control_scores_like_every_checkpoint():
    from lorakiln.evaluate.metrics.base import MetricValue

    def mv(fid, eff):
        return {"fidelity": MetricValue(fid, 4), "effect": MetricValue(eff, 4, details={"delta_norm": 1.0})}

    base, cands = mv(1.0, 0.0), [mv(1.0, 0.0), mv(1.0, 0.2)]
    notes = withdraw_blind(base, cands, "the tiny embedder")
    assert len(notes) == 1 and notes[0].startswith("cannot measure: fidelity is 1.00")
    assert base["fidelity"].value is None and cands[1]["fidelity"].details["unseparated_value"] == 1.0
    kept = [mv(1.0, 0.0), mv(0.6, 0.2)]  # it separates: kept
    assert withdraw_blind(mv(1.0, 0.0), kept, "x") == [] and kept[1]["fidelity"].value == 0.6
    idle = [mv(1.0, 0.0)]  # no checkpoint changes the pictures: that is the no-effect finding's business
    assert withdraw_blind(mv(1.0, 0.0), idle, "x") == [] and idle[0]["fidelity"].value == 1.0
    never = [mv(0.0, 0.2)]  # 0 everywhere is a measurement (never recognised), not blindness
    assert withdraw_blind(mv(0.0, 0.0), never, "x") == []
