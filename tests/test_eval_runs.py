"""`kiln runs list` / `kiln runs compare`: settings, dataset and eval differences between iterations."""

import json
import re

import torch

from lorakiln.core.atomic import write_json
from lorakiln.evaluate.compare import RunSummary, compare, settings_diff, tag_changes
from lorakiln.evaluate.report import svg_chart
from lorakiln.formats.lora_file import write_lora
from lorakiln.services.project import init_project

T = {"lora_unet_a.lora_down.weight": torch.ones(1, 2), "lora_unet_a.lora_up.weight": torch.ones(2, 1)}


def _run(runs, rid, lr, freq, images, dhash, summary=None):
    d = runs / rid
    d.mkdir(parents=True)
    write_json(d / "run.json", {"status": "done", "output_name": "kiln"})
    (d / "config.resolved.toml").write_text(f'[train]\nseed = 42\noutput_name = "{rid}"\n'
                                            f'[train.optimizer]\nlearning_rate = {lr}\n')
    meta = {"ss_tag_frequency": json.dumps({"3_kiln": freq}),
            "ss_dataset_dirs": json.dumps({"3_kiln": {"n_repeats": 3, "img_count": images}}),
            "lorakiln_dataset_hash": dhash}
    for ep in (1, 2):
        write_lora(d / f"kiln-{ep:06d}.safetensors", {k: v * ep for k, v in T.items()}, meta)
    if summary:
        (d / "eval").mkdir()
        write_json(d / "eval" / "summary.json", summary)
        write_json(d / "eval" / "metrics.json", {"candidates": [
            {"checkpoint": "kiln-000002.safetensors", "weight": 0.8,
             "metrics": {"fidelity": {"value": 0.9}, "outfit_lockin": {"value": 0.2}}}]})


def test_compare_core():
    assert settings_diff([{"a": 1, "b": 2, "train.output_name": "x"}, {"a": 1, "b": 3, "train.output_name": "y"},
                          {"a": 1}]) == {"b": [2, 3, None]}
    ch = tag_changes({"coat": 0.9, "capelet": 0.5, "smile": 0.2}, {"coat": 0.6, "smile": 0.25, "bikini": 0.3})
    assert ch == {"added": [["bikini", 0.3]], "removed": [["capelet", 0.5]], "changed": [["coat", 0.9, 0.6]]}
    doc = compare([RunSummary("a", dataset_hash="h1", images=10), RunSummary("b", dataset_hash="h1", images=10)])
    assert doc["dataset"][1]["same_as_previous"] is True


def test_runs_compare_and_list(cli, tmp_path):
    p = init_project(tmp_path / "kiln", "kiln", ["kilnchan"])
    _run(p.runs_dir, "20260101-000000-kiln", 1e-4, {"kilnchan": 20, "coat": 18, "capelet": 12}, 20, "aaa")
    rec = {"checkpoint": "kiln-000002.safetensors", "weight": 0.8, "reason": "best", "score": 0.7}
    _run(p.runs_dir, "20260102-000000-kiln", 5e-5, {"kilnchan": 30, "coat": 15, "bikini": 10}, 30, "bbb",
         {"recommended": rec, "findings": [{"metric": "outfit_lockin", "message": "outfit sticks", "value": 0.4}]})
    code, text = cli("runs", "compare", "--json", cwd=p.root)
    assert code == 0, text
    doc = json.loads(text)
    assert [r["id"] for r in doc["runs"]] == ["20260101-000000-kiln", "20260102-000000-kiln"]
    assert doc["settings"] == {"train.optimizer.learning_rate": [1e-4, 5e-5]}  # output_name is ignored
    d2 = doc["dataset"][1]
    assert (d2["images"], d2["hash"], d2["same_as_previous"]) == (30, "bbb", False)
    assert d2["tags_vs_previous"]["added"] == [["bikini", 0.333]]
    assert d2["tags_vs_previous"]["removed"] == [["capelet", 0.6]]
    assert d2["tags_vs_previous"]["changed"] == [["coat", 0.9, 0.5]]
    assert doc["eval"][0]["recommended"] is None
    assert doc["eval"][1]["metrics"] == {"fidelity": 0.9, "outfit_lockin": 0.2}
    assert doc["eval"][1]["findings"] == ["outfit sticks"]
    code, text = cli("runs", "compare", cwd=p.root)
    assert code == 0 and "learning_rate" in text and "+bikini" in text and "0.900" in text
    code, text = cli("runs", "list", "--json", cwd=p.root)
    rows = json.loads(text)
    assert [r["checkpoints"] for r in rows] == [2, 2] and rows[1]["recommended"]["weight"] == 0.8
    code, text = cli("runs", "compare", "nope", cwd=p.root)
    assert code == 1 and "no run 'nope'" in text


def test_svg_chart_draws_each_series_and_the_base_line():
    svg = svg_chart("Fidelity", {"weight 0.8": [(0, 0.5), (1, 0.7)], "weight 1": [(0, 0.6), (1, 0.9)]}, 0.1)
    assert svg.count("<polyline") == 2 and "base model 0.100" in svg
    assert svg.count("<title>weight 0.8: ") == 2 and svg.count("<title>weight 1: ") == 2
    # overlapping lines stay visible: each series has its own dash pattern and marker shape
    lines = re.findall(r"<polyline [^>]*>", svg)
    assert "stroke-dasharray" not in lines[0] and 'stroke-dasharray="6 3"' in lines[1]
    assert "<circle" in svg and "<rect" in svg
    labelled = svg_chart("Fidelity", {"weight 1": [(0, 0.5), (1, 0.7)]}, x_labels=["epoch 2", "final"],
                         y_title="fidelity (higher is better)")
    assert 'class="x-title"' in labelled and ">checkpoint</text>" in labelled
    assert ">fidelity (higher is better)</text>" in labelled and ">epoch 2</text>" in labelled
    assert svg_chart("empty", {}) == ""
