"""bench/recipes.py's pure parts: the recipes' arms, the interval maths and the table (no training)."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parent.parent / "bench" / "recipes.py"
_spec = importlib.util.spec_from_file_location("bench_recipes", _PATH)
recipes = importlib.util.module_from_spec(_spec)
sys.modules["bench_recipes"] = recipes  # dataclasses look their module up by name
_spec.loader.exec_module(recipes)


def test_each_recipe_has_two_arms_that_differ():
    for r in recipes.RECIPES.values():
        assert r.a.key() != r.b.key(), r.name
        assert r.metrics and r.source
        differ_in_parts = r.a.parts != r.b.parts
        differ_in_settings = r.a.settings != r.b.settings
        assert differ_in_parts or differ_in_settings, r.name


def test_one_thing_differs_per_recipe():
    rs = recipes.RECIPES
    assert rs["prune_core"].a.parts == rs["prune_core"].b.parts
    assert "prune-core" not in rs["prune_core"].a.settings["run.caption_steps"]
    assert rs["back_views"].a.parts == rs["back_views"].b.parts
    assert rs["back_views"].a.settings["export.repeats"]["main"] == rs["back_views"].b.settings["export.repeats"]["main"]
    for name in ("closeups", "outfit_aug"):  # B = A's pictures plus some more
        a, b = rs[name].a.parts, rs[name].b.parts
        assert b[:len(a)] == a and len(b) == len(a) + 1
    for name in ("shuffle", "keep_tokens"):
        assert rs[name].a.parts == rs[name].b.parts and len(rs[name].a.settings) == 1


def test_the_demo_arm_is_shared_and_keys_ignore_labels():
    rs = recipes.RECIPES
    assert rs["prune_core"].b.key() == rs["shuffle"].b.key() == rs["keep_tokens"].b.key()
    relabelled = recipes.Arm("another label", rs["shuffle"].a.parts, rs["shuffle"].a.settings)
    assert relabelled.key() == rs["shuffle"].a.key()


def test_parts_get_disjoint_post_id_ranges():
    parts = recipes.RECIPES["outfit_aug"].b.parts
    q = recipes.parts_queries(parts)
    assert [s for s, _, _ in q] == ["main", "outfits"]
    assert all(hi - lo == p.n for (_, lo, hi), p in zip(q, parts))
    assert q[0][2] <= q[1][1]
    # the same draw gives the same pictures in both arms; another draw others
    a, b = recipes.RECIPES["closeups"].a.parts[0], recipes.RECIPES["closeups"].b.parts
    assert recipes.part_seed(2, a) == recipes.part_seed(2, b[0]) != recipes.part_seed(2, b[1])
    assert recipes.part_seed(1, a) != recipes.part_seed(2, a)


def test_t_interval_matches_the_formula():
    vals = [0.2, 0.4, 0.5, 0.9]
    mean, lo, hi = recipes.t_interval(vals)
    half = 3.182 * statistics.stdev(vals) / 2
    assert mean == pytest.approx(0.5)
    assert (lo, hi) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert recipes.t_interval([0.3]) == (0.3, None, None)
    assert recipes.t_quantile(1) == 12.706 and recipes.t_quantile(100) == 1.96


def test_paired_differences_skip_unmeasured_seeds():
    a = {0: 0.1, 1: 0.2, 2: None, 3: 0.5}
    b = {0: 0.3, 1: 0.1, 2: 0.4}
    va, vb, diff = recipes.paired(a, b)
    assert va == [0.1, 0.2] and vb == [0.3, 0.1]
    assert diff == [pytest.approx(0.2), pytest.approx(-0.1)]


def test_verdicts():
    assert recipes.verdict(-0.1, 0.2) == "no difference shown"
    assert recipes.verdict(0.05, 0.2) == "B higher"
    assert recipes.verdict(-0.3, -0.01) == "B lower"
    assert recipes.verdict(None, None) == "too few seeds"


def test_compare_and_table():
    row = recipes.compare("closeups", "fidelity", {0: 0.2, 1: 0.3, 2: 0.25}, {0: 0.5, 1: 0.6, 2: 0.55})
    assert row["n"] == 3 and row["verdict"] == "B higher"
    assert row["diff"][0] == pytest.approx(0.3)
    empty = recipes.compare("x", "leakage", {0: None}, {0: 0.4})
    assert empty["verdict"] == "not measured" and empty["n"] == 0
    table = recipes.format_table([row, empty])
    lines = table.splitlines()
    assert lines[0].startswith("| recipe | metric | A | B | B − A | n |")
    assert "| closeups | fidelity | 0.25 [" in lines[2] and "| 3 | B higher |" in lines[2]
    assert "| x | leakage | – | – | – | 0 | not measured |" == lines[3]


def test_flatten_metrics_json():
    metrics = {
        "fidelity": {"value": 0.7, "details": {"same_rate": 0.7}},
        "adherence": {"value": 0.9, "details": {"groups": {"outfit": 0.75, "view": 1.0}}},
        "view_bias": {"value": 0.25, "details": {"back": 0.1, "side": 0.15, "base": 0.0}},
        "leakage": {"value": None, "details": {}},
    }
    flat = recipes.flatten(metrics)
    assert flat == {"fidelity": 0.7, "adherence": 0.9, "adherence.outfit": 0.75, "adherence.view": 1.0,
                    "view_bias": 0.25, "view_bias.back": 0.1, "view_bias.side": 0.15, "leakage": None}


def test_every_reported_metric_is_one_the_bench_records():
    known = {"fidelity", "flexibility", "adherence", "leakage", "view_bias", "outfit_lockin", "view_bias.back",
             "adherence.view", "adherence.outfit", "flexibility.outfit"} | {f"fidelity@{v}" for v in recipes.VIEWS}
    for r in recipes.RECIPES.values():
        assert set(r.metrics) <= known, r.name
