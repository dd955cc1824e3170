"""Doctor's back-view advice, followed through the real commands, must lead to a plan doctor accepts.

30 images, 8 from behind (27 %): doctor says to move them to their own subset; after
`kiln subset move`, `kiln plan` used to balance that subset up to half of every epoch.
"""

from __future__ import annotations

import json

import pytest

from lorakiln.config.plan import PlanConfig
from lorakiln.planning.doctor import Dataset, Item, run_rules
from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.plan import PlanInputs, make_plan
from lorakiln.planning.repeats import balance, share_error
from lorakiln.planning.views import ViewCap, planned_share


@pytest.fixture
def back_project(tmp_path, cli):
    from lorakiln.demo.images import Spec, make_image

    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        make_image(Spec(seed=i, width=64, height=64)).save(src / f"{i:02d}.png")
        view = "from behind" if i < 8 else "smile"
        (src / f"{i:02d}.txt").write_text(f"kafka_hsr, 1girl, long hair, {view}, {'jacket' if i % 2 else 'dress'}")
    code, out = cli("init", "kafka", "--trigger", "kafka_hsr", "--base", "animagine-xl-3.1",
                    "--dir", tmp_path / "kafka", cwd=tmp_path)
    assert code == 0, out
    root = tmp_path / "kafka"
    code, out = cli("import", src, cwd=root)
    assert code == 0, out
    return root


def _views(cli, root):
    code, out = cli("doctor", "--rule", "views", "--json", cwd=root)
    assert code == 0, out
    return [f for f in json.loads(out)["findings"] if f["severity"] == "warning"]


def _plan(cli, root, *args):
    code, out = cli("plan", "--json", *args, cwd=root)
    assert code == 0, out
    return json.loads(out)


def test_following_doctors_back_view_advice_gets_under_its_limit(back_project, cli):
    root = back_project
    (f,) = _views(cli, root)
    assert f["data"]["back_share"] == pytest.approx(8 / 30, abs=1e-3)
    assert "kiln subset move --tag from_behind --to back" in f["fix"]
    code, out = cli("subset", "move", "--tag", "from_behind", "--to", "back", cwd=root)
    assert code == 0, out

    # before `kiln plan` runs, doctor already knows the plan will fix it: it says to run it, not to move again
    (f,) = _views(cli, root)
    assert "move them" not in f["fix"] and "run `kiln plan`" in f["fix"]
    plan = _plan(cli, root)
    assert plan["counts"] == {"back": 8, "main": 22}
    share = 8 * plan["repeats"]["back"] / plan["images_per_epoch"]
    assert share <= 0.2 and plan["back_share"] == pytest.approx(share, abs=1e-4)  # was 48 / 92 = 52 %
    assert share > 0.15  # kept near the limit, not starved
    assert _views(cli, root) == []
    code, out = cli("doctor", "--rule", "views", cwd=root)
    assert "move them to their own subset" not in out


def test_a_fractional_weight_is_reached_by_repeats_on_the_other_subsets(back_project, cli):
    root = back_project
    cli("subset", "move", "--tag", "from_behind", "--to", "back", cwd=root)
    plan = _plan(cli, root, "--weight", "back=0.3")
    share = 8 * plan["repeats"]["back"] / plan["images_per_epoch"]
    assert share == pytest.approx(0.3 / 1.3, rel=0.1)  # it stayed at 8 / 30 = 27 % (1 repeat each)
    assert plan["repeats"]["main"] > plan["repeats"]["back"]
    # 0.3 is above doctor's limit here: the plan says so and names the weight that gets under it
    assert any("over doctor's limit of 20%" in n and "--weight back=" in n for n in plan["notes"])
    # doctor measures the repeats written now, and says that a plain `kiln plan` gets under the limit
    (f,) = _views(cli, root)
    assert "repeats in project.toml" in f["message"] and "kiln plan" in f["fix"]
    assert "move them" not in f["fix"]


def test_hand_set_repeats_get_advice_about_repeats_not_a_move(back_project, cli):
    from lorakiln.services.project import open_project

    root = back_project
    cli("subset", "move", "--tag", "from_behind", "--to", "back", cwd=root)
    open_project(root).set_section("export", {"repeats": {"back": 6, "main": 2}})  # 48 / 92
    (f,) = _views(cli, root)
    assert f["data"]["back_share"] == pytest.approx(48 / 92, abs=1e-3)
    assert "move them" not in f["fix"] and "kiln plan --force" in f["fix"] and "back = 1" in f["fix"]


def test_user_weight_too_high_is_named_with_the_weight_that_fits(back_project, cli):
    from lorakiln.services.project import open_project

    root = back_project
    cli("subset", "move", "--tag", "from_behind", "--to", "back", cwd=root)
    open_project(root).set_section("plan", {"weights": {"back": 0.6}})
    plan = _plan(cli, root)
    assert plan["back_share"] > 0.2  # the user's weight is honoured
    (f,) = _views(cli, root)
    assert "--weight back=" in f["fix"] and "move them" not in f["fix"]
    weight = float(f["fix"].split("--weight back=")[1].split("`")[0])
    plan = _plan(cli, root, "--weight", f"back={weight}")
    assert plan["back_share"] <= 0.2


# -- the pure parts ------------------------------------------------------------------------
def test_balance_meets_fractional_weights_and_leaves_equal_weights_alone():
    counts = {"back": 8, "main": 22}
    repeats, _ = balance(counts, {"back": 0.3})
    assert share_error(counts, {"back": 0.3}, repeats) <= 0.1
    assert balance(counts)[0] == {"back": 3, "main": 1}  # seed 001's rounding when nothing is weighted
    repeats, _ = balance({"front": 50, "back": 50}, {"back": 0.5})
    assert repeats == {"front": 2, "back": 1}


def test_plan_caps_a_view_subset_and_leaves_outfit_subsets_balanced():
    counts = {"back": 8, "main": 22}
    cap = ViewCap({"back": 8}, 0.2)
    plan = make_plan(PlanInputs(counts, "sdxl", 1, views=cap), PlanConfig())
    assert planned_share(counts, cap.back, plan.repeats) <= 0.2
    assert any(s.what == "weight[back]" for s in plan.lines)
    outfits = make_plan(PlanInputs({"summer": 8, "main": 22}, "sdxl", 1, views=ViewCap({"main": 2}, 0.2)), PlanConfig())
    assert outfits.repeats == make_plan(PlanInputs({"summer": 8, "main": 22}, "sdxl", 1), PlanConfig()).repeats
    mixed = make_plan(PlanInputs({"main": 30}, "sdxl", 1, views=ViewCap({"main": 8}, 0.2)), PlanConfig())
    assert any("subset move" in n for n in mixed.notes)


def test_doctor_rules_measure_shares_over_images_times_repeats():
    items = [Item(f"b{i}", frozenset({"from_behind", "hat"}), "back", 1) for i in range(8)]
    items += [Item(f"m{i}", frozenset({"smile"}), "main", 4) for i in range(22)]
    ds = Dataset(items, ["kafka"])
    findings = run_rules(ds, DoctorConfig(rules=["views", "toggles"], toggles=["hat"]))
    # 8 of 96 images seen carry the hat: rarer than its 8 of 30 images say
    (f,) = [f for f in findings if f.rule == "toggles"]
    assert "too" not in f.message and f.data["share"] == pytest.approx(8 / 96, abs=1e-3)
    assert not [f for f in findings if f.rule == "views"]
