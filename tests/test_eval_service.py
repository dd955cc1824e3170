"""`kiln eval` end to end on the tiny model with a tiny tagger and a tiny CCIP pair: outputs, report, caching."""

import json
from html.parser import HTMLParser

import pytest

from lorakiln.core.progress import NullProgress
from lorakiln.evaluate.metrics import METRICS
from lorakiln.services.evaluate import evaluate_run, run_eval, select_checkpoints
from lorakiln.services.project import init_project
from lorakiln.services.runs import Checkpoint, run_checkpoints
from lorakiln.train.families import FAMILIES
from tiny_ccip import make_ccip_folder
from tiny_run import make_dataset, make_run
from tiny_tagger import make_tagger_folder

RUN = "20260101-000000-kiln"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    fam = FAMILIES.get("tiny-sd15")
    p = init_project(tmp_path_factory.mktemp("e") / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
    make_dataset(p.root)
    make_tagger_folder(p.root / "tagger")
    make_ccip_folder(p.root / "ccip")
    p.set_section("tag", {"model": "./tagger"})
    p.set_section("eval", {"steps": 2, "weights": [0.5, 1.0]})
    make_run(p.runs_dir, fam, fam.load("tiny-sd15"), scale=0.3)
    return p


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.rows, self._table = [], [], {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "table":
            self._table = a.get("class")
            self.rows[self._table] = 0
        if tag == "tr" and self._table:
            self.rows[self._table] += 1


def test_eval_end_to_end(cli, proj):
    code, text = cli("eval", "--probes", "quick", "--seeds", "1", "--ccip", str(proj.root / "ccip"), cwd=proj.root)
    assert code == 0, text
    out = proj.runs_dir / RUN / "eval"
    summary = json.loads((out / "summary.json").read_text())
    rec = summary["recommended"]
    assert rec["checkpoint"] in {"kiln-000001.safetensors", "kiln-000002.safetensors"}
    assert rec["weight"] in (0.5, 1.0) and rec["reason"].startswith(rec["checkpoint"])
    assert f"recommended: {rec['checkpoint']}" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["embedder"] == "ccip:ccip" and metrics["settings"]["tagger"] == "local:tagger"
    assert metrics["settings"]["training_outfit"] == ["red_capelet", "coat"]  # long_hair is core
    assert [(c["checkpoint"], c["weight"]) for c in metrics["candidates"]] == [
        ("kiln-000001.safetensors", 0.5), ("kiln-000001.safetensors", 1.0),
        ("kiln-000002.safetensors", 0.5), ("kiln-000002.safetensors", 1.0)]
    cand = metrics["candidates"][0]["metrics"]
    assert set(cand) == set(METRICS.names())
    for name in ("style_bleed", "effect"):
        assert cand[name]["value"] is not None, (name, cand[name]["note"])
    for name in ("fidelity", "flexibility"):  # the tiny CCIP sees mean colours: it may not separate
        assert cand[name]["value"] is not None or cand[name]["note"].startswith("cannot measure"), cand[name]
    # the tiny tagger sees mean colours only: never maid, from_behind or the outfit, base model included
    for name in ("adherence", "view_bias", "outfit_lockin"):
        assert cand[name]["value"] is None and cand[name]["note"].startswith("cannot measure"), cand[name]
        assert "the tagger (local:tagger)" in cand[name]["note"]
        assert metrics["base"]["metrics"][name]["details"]["unseparated_value"] == 0.0
    assert metrics["base"]["metrics"]["style_bleed"]["value"] == 0.0  # the base against itself
    page = _Html()
    page.feed((out / "report.html").read_text())
    assert page.rows["metrics"] == 1 + 4 + 1  # header, candidates, base row
    charted = [n for n in METRICS.names() if any(c["metrics"][n]["value"] is not None for c in metrics["candidates"])]
    assert len(charted) >= 4 and page.tags.count("svg") == len(charted)  # one chart per metric with a value
    assert "grid.png" in page.imgs and all((out / src).is_file() for src in page.imgs)
    assert len(list((out / "images").rglob("*.png"))) == 5 * 6  # base + 2 checkpoints x 2 weights, 6 probes


def test_rerun_only_does_what_is_new(proj):
    cfg = proj.resolve("eval", {"weights": [0.5, 0.8, 1.0], "probes": {"probe_set": "quick", "seeds": [1]},
                                "models": {"ccip_local": str(proj.root / "ccip")}})
    first = run_eval(proj, RUN, cfg, NullProgress())
    assert (first.render.made, first.render.reused) == (2 * 6, 5 * 6)  # only weight 0.8 is new
    victims = sorted((proj.runs_dir / RUN / "eval" / "images" / "base").glob("*.png"))[:2]
    for v in victims:  # as if killed before these were written
        v.unlink()
    prog = NullProgress()
    again = run_eval(proj, RUN, cfg, prog)
    assert (again.render.made, again.render.reused) == (2, 7 * 6 - 2)
    assert prog.tasks["analyse pictures"].done == 2  # cached analysis reused for the rest
    rows = json.loads((proj.runs_dir / RUN / "eval" / "metrics.json").read_text())["candidates"]
    assert [r["weight"] for r in rows] == [0.5, 0.8, 1.0, 0.5, 0.8, 1.0]
    line = evaluate_run(proj, RUN, NullProgress(), cli={"weights": [0.5, 0.8, 1.0], "probes": {
        "probe_set": "quick", "seeds": [1]}, "models": {"ccip_local": str(proj.root / "ccip")}}).summary()
    assert "(42 pictures, 0 new" in line and line.endswith("report.html")


def test_checkpoint_selection(proj):
    found = run_checkpoints(proj.runs_dir / RUN)
    assert [c.label for c in found] == ["epoch 1", "epoch 2"]  # the final file equals epoch 2
    many = [Checkpoint(f"epoch {i}", proj.root / f"k-{i:06d}.safetensors", epoch=i) for i in range(1, 11)]
    assert [c.epoch for c in select_checkpoints(many, "all", 4)] == [1, 4, 7, 10]
    assert [c.epoch for c in select_checkpoints(many, "last:2", 4)] == [9, 10]
    assert [c.epoch for c in select_checkpoints(many, "2, 6", 4)] == [2, 6]
