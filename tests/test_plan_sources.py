"""`kiln plan` names where each value it did not compute came from, the way `kiln config show` does."""

from __future__ import annotations

import json

from lorakiln.core.records import ImageRecord


def _project(tmp_path, base="tiny-sdxl"):
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "p", "p", ["kie"], base=base)
    m = p.manifest()
    for i in range(10):
        m.add(ImageRecord(id=f"danbooru-{i}", source="danbooru", width=64, height=64, tags={"general": ["1girl"]}))
    m.save()
    return p


def _rules(cli, root, *args) -> dict[str, str]:
    code, out = cli("plan", "--json", "--dry-run", *args, cwd=root)
    assert code == 0, out
    return {s["what"]: s["rule"] for s in json.loads(out)["explanation"]}


def test_values_from_the_preset_are_not_claimed_as_set_by_the_user(tmp_path, cli, monkeypatch):
    p = _project(tmp_path)
    rules = _rules(cli, p.root)
    assert rules["epochs"] == "[plan].epochs from preset tiny-sdxl"  # was "(set by you)"
    assert rules["target images per epoch"] == "[plan].images_per_epoch from preset tiny-sdxl"
    code, out = cli("config", "show", "plan", cwd=p.root)
    (row,) = [line for line in out.splitlines() if "│ epochs " in line]
    assert "preset" in row  # the same source as config show gives

    assert _rules(cli, p.root, "--epochs", "3")["epochs"] == "[plan].epochs from the command line"
    p.set_section("plan", {"epochs": 4})
    assert _rules(cli, p.root)["epochs"].startswith("[plan].epochs from project.toml")
    monkeypatch.setenv("KILN_PLAN__EPOCHS", "5")
    assert _rules(cli, p.root)["epochs"] == "[plan].epochs from the environment (KILN_PLAN__EPOCHS)"


def test_te_ratio_source_and_an_environment_override_of_what_plan_writes(tmp_path, cli, monkeypatch):
    p = _project(tmp_path, base="pony-v6")
    rules = _rules(cli, p.root, "--strength", "1")
    assert "[plan].te_ratio from preset pony-v6" in rules["text_encoder_lr"]
    monkeypatch.setenv("KILN_TRAIN__MAX_TRAIN_EPOCHS", "3")
    code, out = cli("plan", "--json", "--dry-run", cwd=p.root)
    notes = json.loads(out)["notes"]
    assert any("KILN_TRAIN__MAX_TRAIN_EPOCHS" in n and "overrides train.max_train_epochs" in n for n in notes)
