"""Thresholds, MCut, balanced names, the storage floor, and the [tag] config."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorakiln.config.resolve import resolve_section
from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.tagging.models import TAGGERS, balanced_threshold
from lorakiln.tagging.thresholds import (
    character_threshold,
    general_threshold,
    keep_above_floor,
    mcut_threshold,
    select,
)


def test_mcut_is_the_midpoint_of_the_largest_gap():
    assert mcut_threshold([0.2, 0.9, 0.3, 0.8]) == pytest.approx(0.55)  # gap 0.8 -> 0.3
    assert mcut_threshold([0.99, 0.2, 0.1]) == pytest.approx(0.595)
    assert mcut_threshold([0.6]) == pytest.approx(0.3)  # one score: kept
    assert mcut_threshold([]) == math.inf


def test_select_keeps_scores_at_or_above_the_threshold_best_first():
    scores = {"a": 0.5, "b": 0.35, "c": 0.349, "d": 0.9}
    assert list(select(scores, 0.35)) == ["d", "a", "b"]
    assert list(select(scores, 0.0, floor=0.4)) == ["d", "a"]


def test_general_threshold_number_balanced_and_mcut():
    scores = {"x": 0.9, "y": 0.85, "z": 0.2}
    assert general_threshold(TagConfig(threshold=0.4), scores, "wd-vit-v3") == 0.4
    assert general_threshold(TagConfig(threshold="balanced"), scores, "wd-vit-v3") == 0.2614
    assert general_threshold(TagConfig(threshold="balanced"), scores, "wd-eva02-large-v3") == 0.5296
    assert general_threshold(TagConfig(mcut=True), scores, "any") == pytest.approx(0.525)


def test_every_published_balanced_threshold_is_registered():
    published = {"wd-eva02-large-v3": 0.5296, "wd-swinv2-v3": 0.2653, "wd-vit-v3": 0.2614,
                 "wd-convnext-v3": 0.2682, "wd-v1-4-swinv2-v2": 0.3771, "wd-v1-4-vit-v2": 0.3537,
                 "wd-v1-4-convnext-v2": 0.3685, "wd-v1-4-convnextv2-v2": 0.371, "wd-v1-4-moat-v2": 0.3771}
    for name, value in published.items():
        assert balanced_threshold(name) == value
    assert TAGGERS.get("wd-swinv2-v3").repo_id == "SmilingWolf/wd-swinv2-tagger-v3"


def test_balanced_without_a_published_value_is_a_clear_error():
    for model in ("wd-vit-large-v3", "local:my-folder", "z3d-e621-convnext"):
        with pytest.raises(KilnError, match=rf"{model}.*no published balanced threshold.*--threshold"):
            balanced_threshold(model)


def test_character_mcut_never_goes_below_its_floor():
    scores = {"kilnchan": 0.12, "other": 0.02}  # MCut alone would pick 0.07
    cfg = TagConfig(character_mcut=True)
    assert character_threshold(cfg, scores) == 0.15
    assert select(scores, character_threshold(cfg, scores)) == {}
    assert character_threshold(cfg, {"a": 0.95, "b": 0.3}) == pytest.approx(0.625)
    assert character_threshold(TagConfig(character_threshold=0.7), scores) == 0.7


def test_keep_above_floor_stores_the_floor_and_one_below():
    names = ["a", "b", "c", "d"]
    kept = keep_above_floor(names, np.array([0.01, 0.6, 0.04, 0.05]), 0.05)
    assert kept == {"b": 0.6, "d": 0.05, "c": 0.04}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=60))
def test_mcut_on_stored_scores_selects_what_mcut_on_all_scores_selects(probs):
    floor = 0.05
    probs = np.round(np.array(probs), 5)  # stored scores are rounded to 5 places
    names = [f"t{i}" for i in range(len(probs))]
    full = dict(zip(names, probs.tolist()))
    stored = keep_above_floor(names, probs, floor)
    assert select(stored, mcut_threshold(stored.values()), floor) == select(full, mcut_threshold(full.values()), floor)


def test_config_accepts_numbers_names_and_strings_from_the_environment():
    assert TagConfig(threshold="balanced").threshold == "balanced"
    assert TagConfig(threshold="0.5").threshold == 0.5
    cfg = resolve_section(TagConfig, name="tag", environ={"KILN_TAG__THRESHOLD": "0.45", "KILN_TAG__MCUT": "true"})
    assert cfg.threshold == 0.45 and cfg.mcut is True


@pytest.mark.parametrize("bad", ["bogus", 1.5, -0.1, True])
def test_config_rejects_bad_thresholds_with_the_field_named(bad):
    with pytest.raises(ConfigError, match=r"project.toml: \[tag\] threshold"):
        resolve_section(TagConfig, name="tag", project={"threshold": bad}, environ={})


def test_threshold_below_the_storage_floor_is_refused():
    with pytest.raises(ConfigError, match="below score_floor"):
        resolve_section(TagConfig, name="tag", project={"threshold": 0.02}, environ={})
    assert TagConfig(threshold=0.02, score_floor=0.01).threshold == 0.02
