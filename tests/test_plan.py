"""kiln plan: the seeds' own arithmetic, the schedules, and writing into project.toml."""

import json

import pytest

from lorakiln.config.plan import PlanConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.planning.lr import is_adaptive, lr_from_strength, te_lr
from lorakiln.planning.plan import PlanInputs, make_plan
from lorakiln.planning.repeats import balance, images_per_epoch
from lorakiln.planning.schedules import SCHEDULES
from lorakiln.planning.steps import CONCEPTS, HOLOSTRAWBERRY, PDXL, TABLES, epochs_by_t, lookup, steps_for
from lorakiln.services.plan import PLAN_FILE, folder_counts, plan_project

SEED001_OUTFITS = {"outfit1": 20, "outfit2": 33, "outfit3": 100, "outfit4": 50}


# -- the seeds' worked examples -------------------------------------------------------
def test_seed001_multiple_concepts_repeats_and_t():
    repeats, _ = balance(SEED001_OUTFITS)
    assert repeats == {"outfit1": 5, "outfit2": 3, "outfit3": 1, "outfit4": 2}
    assert images_per_epoch(SEED001_OUTFITS, repeats) == 399  # (20x5)+(33x3)+(100x1)+(50x2)


def test_seed001_multiple_concepts_full_plan():
    plan = make_plan(PlanInputs(SEED001_OUTFITS, "sd15", batch_size=2), PlanConfig())
    assert plan.schedule == "sd15-concepts"
    assert plan.repeats == {"outfit1": 5, "outfit2": 3, "outfit3": 1, "outfit4": 2}
    assert plan.images_per_epoch == 399 and plan.epochs == 10  # "T is closest to the last row"
    assert plan.steps_per_epoch == 200 and plan.steps == 2000
    text = "\n".join(s.line() for s in plan.lines)
    assert "(20 x 5) + (33 x 3) + (100 x 1) + (50 x 2) = 399" in text
    assert "seed 001's T table" in text


@pytest.mark.parametrize("t, epochs", [(200, 17), (300, 12), (400, 10), (399, 10), (150, 17), (900, 10)])
def test_seed001_t_table(t, epochs):
    assert epochs_by_t(CONCEPTS, t)[0] == epochs


def test_seed001_t_table_nearest_row_like_the_seed():
    assert epochs_by_t(CONCEPTS, 260, "nearest")[0] == 12  # 260 is closer to 300
    assert epochs_by_t(CONCEPTS, 260, "interpolate")[0] == 14  # 17 + 0.6 x (12 - 17)


@pytest.mark.parametrize("images, batch, repeats, epochs, steps", [
    (20, 2, 10, 10, 1000), (100, 2, 3, 10, 1500), (400, 2, 1, 10, 2000),
    (1000, 3, 1, 10, 3340),  # the seed writes 3300 for 1000 x 10 / 3; kohya counts whole batches
])
def test_holostrawberry_table(images, batch, repeats, epochs, steps):
    plan = make_plan(PlanInputs({"main": images}, "sd15", batch), PlanConfig())
    assert plan.schedule == "sd15-images"
    assert (plan.repeats["main"], plan.epochs, plan.steps) == (repeats, epochs, steps)


def test_holostrawberry_between_rows_interpolates_images_seen():
    plan = make_plan(PlanInputs({"main": 50}, "sd15", 2), PlanConfig())
    # T target 200 + 30/80 x 100 = 237.5 -> 237.5 / 50 = 4.75 -> 5 repeats
    assert plan.repeats == {"main": 5} and plan.steps == 1250


@pytest.mark.parametrize("images, epochs, steps", [(20, 10, 200), (40, 6, 240), (60, 5, 300), (100, 4, 400),
                                                    (200, 3, 600), (600, 2, 1200)])
def test_pdxl_table(images, epochs, steps):
    plan = make_plan(PlanInputs({"main": images}, "sdxl", 2), PlanConfig(schedule="pdxl"))
    assert (plan.repeats["main"], plan.epochs, plan.steps) == (2, epochs, steps)


def test_pdxl_outside_the_table_keeps_two_repeats():
    plan = make_plan(PlanInputs({"main": 1000}, "sdxl", 2), PlanConfig(schedule="pdxl"))
    assert plan.repeats == {"main": 2} and plan.epochs == 2


@pytest.mark.parametrize("table", list(TABLES.values()), ids=list(TABLES))
def test_tables_are_consistent_with_their_quoted_steps(table):
    for r in table.rows:
        exact = r.t * r.epochs / r.batch
        assert abs(exact - r.steps) / r.steps < 0.02, r


def test_seed003_learning_rate_formula():
    lr, step = lr_from_strength(1.1, {"main": 81}, {"main": 10}, 10, digits=3)
    assert step.arithmetic.startswith("1.1 / (10 x 10 x 81)")
    assert "0.00013580246913580247" in step.arithmetic
    assert lr == 0.000136
    te, _ = te_lr(lr, 0.5)
    assert te == pytest.approx(6.8e-5)
    exact, _ = lr_from_strength(1.1, {"main": 81}, {"main": 10}, 10, digits=17)
    assert exact == pytest.approx(1.1 / 8100, rel=1e-15)


def test_seed003_fixed_10x10_plan():
    plan = make_plan(PlanInputs({"main": 81}, "sd15", 1), PlanConfig(schedule="fixed-10x10", strength=1.1))
    assert plan.repeats == {"main": 10} and plan.epochs == 10
    assert plan.unet_lr == 0.000136 and plan.text_encoder_lr == 6.8e-05


def test_lr_over_several_subsets_uses_images_seen():
    lr, step = lr_from_strength(1.0, {"a": 20, "b": 40}, {"a": 2, "b": 1}, 5, digits=17)
    assert lr == pytest.approx(1.0 / ((20 * 2 + 40 * 1) * 5))
    assert "(20 x 2 + 40 x 1) x 5" in step.arithmetic


def test_kohya_colab_xl_rule():
    small = make_plan(PlanInputs({"main": 20}, "sdxl", 4), PlanConfig())
    assert small.schedule == "xl-100" and small.repeats == {"main": 5} and small.epochs == 10
    big = make_plan(PlanInputs({"main": 300}, "sdxl", 4), PlanConfig())
    assert big.repeats == {"main": 1}
    huge = make_plan(PlanInputs({"main": 1000}, "sdxl", 1), PlanConfig())
    assert huge.epochs == 2  # about 2000 steps: 2000 / 1000 steps per epoch


def test_prodigy_schedule_seed001():
    plan = make_plan(PlanInputs({"main": 20}, "sd15", 2), PlanConfig(schedule="prodigy"))
    assert plan.repeats == {"main": 5} and plan.epochs == 20


def test_weights_change_the_balance():
    plan = make_plan(PlanInputs({"front": 50, "back": 50}, "sdxl", 1),
                     PlanConfig(weights={"back": 0.5}, images_per_epoch=1))
    assert plan.repeats == {"back": 1, "front": 2}  # front shown twice as often as back


def test_small_multi_subset_dataset_is_scaled_up_to_the_table():
    plan = make_plan(PlanInputs({"a": 10, "b": 20}, "sd15", 2), PlanConfig())
    assert plan.repeats == {"a": 10, "b": 5}  # balanced 2:1, then x5 to reach about 212 images per epoch
    assert plan.images_per_epoch == 200


def test_user_fixed_epochs_and_target():
    plan = make_plan(PlanInputs({"main": 40}, "sd15", 2), PlanConfig(epochs=7, images_per_epoch=400))
    assert plan.epochs == 7 and plan.repeats == {"main": 10}
    assert any(s.rule == "[plan].epochs" for s in plan.lines)  # no source claimed when none is known


def test_adaptive_optimizer_keeps_its_lr():
    assert is_adaptive("Prodigy") and is_adaptive("DAdaptAdam") and not is_adaptive("AdamW8bit")
    plan = make_plan(PlanInputs({"main": 20}, "sd15", 2, optimizer="Prodigy"), PlanConfig(strength=1.1))
    assert plan.unet_lr is None and any("Prodigy" in n for n in plan.notes)


def test_empty_subsets_and_no_images():
    plan = make_plan(PlanInputs({"main": 20, "empty": 0}, "sd15", 2), PlanConfig())
    assert "empty" not in plan.repeats and any("empty" in n for n in plan.notes)
    with pytest.raises(KilnError, match="no kept images"):
        make_plan(PlanInputs({"main": 0}, "sd15", 2), PlanConfig())


def test_schedule_registry_and_validation():
    assert {"sd15-images", "sd15-concepts", "pdxl", "xl-100", "prodigy", "fixed-10x10"} <= set(SCHEDULES.names())
    with pytest.raises(ValueError, match="unknown schedule"):
        PlanConfig(schedule="nope")
    with pytest.raises(ValueError, match="positive"):
        PlanConfig(weights={"a": 0})


def test_lookup_and_steps_helpers():
    assert lookup([(0, 0), (10, 100)], 2.5)[0] == 25
    assert lookup([(0, 0), (10, 100)], 99)[0] == 100
    assert steps_for(399, 10, 2)[:2] == (200, 2000)
    assert HOLOSTRAWBERRY.rows[0].t == 200 and PDXL.rows[-1].t == 1200


# -- the service: project.toml, plan.json, hand edits -----------------------------------
def _add(project, counts):
    m = project.manifest()
    for subset, n in counts.items():
        for i in range(n):
            m.add(ImageRecord(id=f"{subset}-{i}", source="local", subset=subset))
    m.add(ImageRecord(id="gone", source="local", subset="outfit1", status="dropped", reason="duplicate: x"))
    m.save()


@pytest.fixture
def sd15_project(tmp_path):
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "zeta", "zeta", ["zetadef"], base="nai")
    _add(p, SEED001_OUTFITS)
    return p


def test_plan_writes_project_toml_and_remembers(sd15_project):
    from lorakiln.services.project import open_project

    out = plan_project(sd15_project, {"strength": 1.1})
    assert out.written and {c.status for c in out.changes} == {"set"}
    p = open_project(sd15_project.root)
    assert p.resolve("export").repeats == {"outfit1": 5, "outfit2": 3, "outfit3": 1, "outfit4": 2}
    train = p.resolve("train")
    assert train.max_train_epochs == 10
    assert train.optimizer.unet_lr == 0.000276  # 1.1 / 3990
    assert train.optimizer.text_encoder_lr == pytest.approx(0.0000552)  # sd15-nai preset: te_ratio 0.2
    assert train.network.network_dim == 16  # the preset's other values are untouched
    record = json.loads((p.root / PLAN_FILE).read_text())
    assert record["written"]["train.max_train_epochs"] == 10 and record["explanation"]


def test_plan_is_idempotent_and_dry_run_writes_nothing(sd15_project):
    plan_project(sd15_project)
    before = sd15_project.config_path.read_bytes()
    again = plan_project(sd15_project)
    assert {c.status for c in again.changes} == {"unchanged"}
    assert sd15_project.config_path.read_bytes() == before
    dry = plan_project(sd15_project, {"epochs": 3}, dry_run=True)
    assert not dry.written and sd15_project.config_path.read_bytes() == before


def test_plan_keeps_hand_edits_unless_forced(sd15_project):
    from lorakiln.services.project import open_project

    plan_project(sd15_project)
    path = sd15_project.config_path
    path.write_text(path.read_text().replace("max_train_epochs = 10", "max_train_epochs = 12"))
    p = open_project(sd15_project.root)
    out = plan_project(p)
    assert {c.key: c.status for c in out.changes}["train.max_train_epochs"] == "kept"
    assert open_project(p.root).resolve("train").max_train_epochs == 12
    out = plan_project(open_project(p.root), force=True)
    assert {c.key: c.status for c in out.changes}["train.max_train_epochs"] == "set"
    assert open_project(p.root).resolve("train").max_train_epochs == 10


def test_plan_updates_its_own_values_when_the_dataset_grows(sd15_project):
    from lorakiln.services.project import open_project

    plan_project(sd15_project)
    _add(sd15_project, {"outfit5": 100})
    out = plan_project(open_project(sd15_project.root))
    assert {c.key: c.status for c in out.changes}["export.repeats"] == "set"
    assert open_project(sd15_project.root).resolve("export").repeats["outfit5"] == 1


def test_plan_needs_a_family(project):
    _add(project, {"main": 20})
    with pytest.raises(KilnError, match="--family sd15"):
        plan_project(project)
    assert plan_project(project, {"family": "sdxl"}, dry_run=True).plan.schedule == "xl-100"


def test_folder_counts_and_plan_folder(tmp_path):
    from lorakiln.services.plan import plan_folder

    for folder, n in (("10_front", 20), ("3_back", 10)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            (tmp_path / folder / f"{i}.png").write_bytes(b"")
            (tmp_path / folder / f"{i}.txt").write_text("x")
    assert folder_counts(tmp_path)[0] == {"back": 10, "front": 20}
    out = plan_folder(tmp_path, PlanConfig(), arch="sd15", batch_size=2)
    assert out.plan.repeats == {"back": 10, "front": 5}
    assert ("10_front", "5_front") in out.renames and ("3_back", "10_back") in out.renames
    with pytest.raises(KilnError, match="no images"):
        folder_counts(_empty(tmp_path))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_cli_plan(sd15_project, cli):
    code, out = cli("plan", "--strength", "1.1", "--dry-run", cwd=sd15_project.root)
    assert code == 0, out
    assert "images per epoch" in out and "1.1 / (" in out and "dry run" in out
    code, out = cli("plan", "--json", "-w", "outfit3=2", cwd=sd15_project.root)
    data = json.loads(out)
    # outfit3 (100 images) at weight 2 shows twice as many images per epoch as each other outfit
    assert data["repeats"] == {"outfit1": 3, "outfit2": 2, "outfit3": 1, "outfit4": 1} and data["written"]
    code, out = cli("plan", "--list-schedules", cwd=sd15_project.root)
    assert code == 0 and "pdxl" in out and "fixed-10x10" in out
    code, out = cli("plan", "-w", "oops", cwd=sd15_project.root)
    assert code == 1 and "SUBSET=NUMBER" in out


def test_cli_plan_folder_outside_a_project(tmp_path, cli):
    (tmp_path / "5_main").mkdir()
    for i in range(20):
        (tmp_path / "5_main" / f"{i}.jpg").write_bytes(b"")
    code, out = cli("plan", tmp_path, "--family", "sd15", cwd=tmp_path)
    assert code == 0, out
    assert "rename folder 5_main -> 10_main" in out


def test_kept_hand_edited_epochs_drive_steps_and_learning_rate(sd15_project):
    from lorakiln.services.project import open_project

    plan_project(sd15_project, {"strength": 1.1})
    path = sd15_project.config_path
    path.write_text(path.read_text().replace("max_train_epochs = 10", "max_train_epochs = 20"))
    out = plan_project(open_project(sd15_project.root), {"strength": 1.1})
    assert {c.key: c.status for c in out.changes}["train.max_train_epochs"] == "kept"
    assert out.plan.epochs == 20 and out.plan.steps == 20 * 200  # what training will actually run
    train = open_project(sd15_project.root).resolve("train")
    assert train.max_train_epochs == 20 and train.optimizer.unet_lr == 0.000138  # 1.1 / (399 x 20)
    again = plan_project(open_project(sd15_project.root), {"strength": 1.1})
    assert {c.key: c.status for c in again.changes}["train.max_train_epochs"] == "kept"  # still a hand edit
    assert open_project(sd15_project.root).resolve("train").optimizer.unet_lr == 0.000138
