"""`kiln demo` (the toy world): the journey where the trained LoRA can be seen and measured."""

from __future__ import annotations

import json
from pathlib import Path

from lorakiln.core.progress import NullProgress
from lorakiln.services.demo_toy import CHARACTER, TRIGGER, own_pictures, run_toy_demo, toy_posts


def test_toy_posts_mix_kie_with_other_characters_and_copies():
    posts = toy_posts()
    kie = [p for p in posts if CHARACTER in p.all_tags]
    assert len(kie) == 43 and len(posts) == 55
    assert sum("solo" in p.all_tags for p in kie) >= 33  # a few 2girls posts the saved query skips
    copies = posts[-3:]
    assert [p.ext for p in copies] == ["jpg", "jpg", "png"] and copies[1].width == 80
    assert "monochrome" in copies[2].all_tags
    assert len(toy_posts(copies=False)) == 52


def test_own_pictures_are_a_kohya_folder_with_captions(tmp_path):
    sub = own_pictures(tmp_path) / "2_summer"
    caps = sorted(sub.glob("*.txt"))
    assert len(caps) == 6 and len(list(sub.glob("*.png"))) == 6
    first = caps[0].read_text()
    assert first.startswith(f"{TRIGGER}, ") and "one-piece swimsuit" in first and "sky" in first


def test_toy_demo_trains_a_lora_whose_fidelity_beats_the_base_model(tmp_path, cli):
    code, out = cli("demo", "--dir", tmp_path / "toy")  # the toy world is the default
    assert code == 0, out
    assert "done train" in out and "done eval" in out and "demo done" in out
    root = tmp_path / "toy" / "kiln-demo"
    recs = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines() if line.strip()]
    reasons = [r.get("reason") or "" for r in recs if r.get("status") == "dropped"]
    assert sum("duplicate" in r for r in reasons) == 2, reasons  # the two re-uploads
    assert sum("monochrome" in r for r in reasons) == 1, reasons
    assert sum(r.get("subset") == "summer" for r in recs) == 6  # the imported folder
    evaldir = next((root / "runs").glob("*/eval"))
    metrics = json.loads((evaldir / "metrics.json").read_text())
    summary = json.loads((evaldir / "summary.json").read_text())
    assert summary["settings"]["embedder"].startswith("ccip") and summary["settings"]["size"] == "64x64"
    base = metrics["base"]["metrics"]["fidelity"]["details"]
    assert base["base_same_rate"] == 0.0  # the base model has never seen kie
    pick = summary["recommended"]
    assert pick["status"] == "recommended"
    best = max(r["fidelity"] for r in summary["ranking"])
    assert best >= 0.4, summary["ranking"]  # measured 0.74 at epoch 3
    assert (evaldir / "grid.png").is_file()

    # the same run with its first checkpoint's up-weights zeroed (metadata kept): a LoRA that does
    # nothing measures like the base model and is never recommended
    import torch
    from safetensors.torch import load_file, save_file

    from lorakiln.formats.lora_file import read_metadata

    run = evaldir.parent
    first = sorted(run.glob("*-0*.safetensors"))[0]
    meta = read_metadata(first)
    tensors = load_file(str(first))
    save_file({k: torch.zeros_like(v) if "lora_up" in k else v for k, v in tensors.items()}, str(first), metadata=meta)
    code, out = cli("eval", cwd=run.parents[1])
    assert code == 0, out
    summary = json.loads((evaldir / "summary.json").read_text())
    zero = next(r for r in summary["ranking"] if first.stem in str(r.get("checkpoint")))
    assert zero.get("excluded") and "no measured effect" in zero["excluded"]
    assert zero["fidelity"] in (None, 0.0) or zero["fidelity"] <= 0.1
    assert summary["recommended"]["status"] == "recommended"
    assert first.stem not in str(summary["recommended"]["checkpoint"])


def test_unknown_world_is_refused(tmp_path, cli):
    code, out = cli("demo", "--world", "mars", "--dir", tmp_path / "x")
    assert code == 1 and "--world 'mars'" in out and not (tmp_path / "x").exists()


def test_an_overtrained_lora_loses_flexibility_and_the_pick_moves_earlier_or_lower(tmp_path):
    """Ten times the demo's learning rate burns the LoRA in: its pictures are no longer kie in
    anything (measured: fidelity and flexibility 0.00 for every checkpoint at weight 1, and at
    weight 0.5 from epoch 4), and the evaluation recommends the first epoch at the lower weight."""
    overrides = {("train", "optimizer", "learning_rate"): 2e-2,
                 ("eval", "probes", "only"): ["portrait", "dataset", "toy_dress", "toy_armor", "no_trigger"]}
    proj = run_toy_demo(tmp_path / "hot", NullProgress(), log=lambda line: None, overrides=overrides)
    summary = json.loads(next(Path(proj.runs_dir).glob("*/eval/summary.json")).read_text())
    rows = {(Path(r["checkpoint"]).name, r["weight"]): r for r in summary["ranking"]}
    final = rows[("kiln-toy-demo.safetensors", 1.0)]
    pick = summary["recommended"]
    assert pick["status"] == "recommended", pick
    chosen = rows[(Path(pick["checkpoint"]).name, pick["weight"])]
    assert (chosen["epoch"], chosen["weight"]) < (final["epoch"], final["weight"])  # earlier, or lower
    assert chosen["flexibility"] > final["flexibility"] + 0.1, (chosen, final)
    assert chosen["fidelity"] > final["fidelity"], (chosen, final)
