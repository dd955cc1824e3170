"""`kiln config import`, from a rerun of the newcomer trials: notes only for what the file says,
string values read whole or not at all, and counts that add up."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from lorakiln.config.importers import import_text
from lorakiln.config.train import BucketConfig


def _json(tmp_path, values: dict):
    return import_text(json.dumps(values), tmp_path / "kohya.json")


# -- notes ------------------------------------------------------------------------------
def test_caption_extension_note_only_when_the_file_leaves_it_empty(tmp_path):
    note = "caption_extension was empty"
    assert not any(note in n for n in _json(tmp_path, {"network_dim": 8}).notes)
    assert not any(note in n for n in _json(tmp_path, {"caption_extension": ".txt"}).notes)
    assert any(note in n for n in _json(tmp_path, {"caption_extension": ""}).notes)
    pasted = import_text('"network_dim": 8,\n"caption_extension": ,\n', tmp_path / "kohya.json")  # seed 000's form
    assert any(note in n for n in pasted.notes)


def test_sdxl_flag_is_noted_in_every_format(tmp_path):
    easy = import_text('[general_args.args]\nsdxl = true\nmax_train_epochs = 4\n', tmp_path / "easy.toml")
    assert any(n.startswith("made for SDXL (general_args.args.sdxl") for n in easy.notes)
    assert any(n.startswith("made for SDXL") for n in _json(tmp_path, {"sdxl": "true"}).notes)
    assert not any(n.startswith("made for SDXL") for n in _json(tmp_path, {"sdxl": False}).notes)


# -- malformed values: reported as ignored with the reason, never half read -------------------
@pytest.mark.parametrize("text", ["512,x", "512,", "x512", "512x", "1,2,3", "512;512", "big"])
def test_malformed_resolution_is_ignored_with_its_reason(tmp_path, text):
    report = _json(tmp_path, {"max_resolution": text})
    assert ("train", "buckets", "resolution") not in report.values
    [entry] = report.entries
    assert entry.status == "ignored" and "cannot read a resolution from" in entry.reason


@pytest.mark.parametrize("text, value", [("1024,1024", 1024), ("768", 768), ("1024x768", (1024, 768)),
                                         (" 1024 , 768 ", (1024, 768)), ("1024 768", (1024, 768))])
def test_resolution_text_forms(tmp_path, text, value):
    assert _json(tmp_path, {"max_resolution": text}).values[("train", "buckets", "resolution")] == value


def test_project_toml_resolution_is_read_whole():
    assert BucketConfig(resolution="1024x768").resolution == (1024, 768)
    with pytest.raises(ValidationError, match=r"cannot read a resolution from '512,x'"):
        BucketConfig(resolution="512,x")


@pytest.mark.parametrize("key, value, why", [
    ("learning_rate", "1e-4x", "expected a number"),
    ("network_alpha", "1_6", "expected a number"),  # Python's float() would read 16
    ("lr_scheduler_num_cycles", "3,", "expected a number"),
    ("keep_tokens", [1], "expected a number"),
    ("caption_extension", ["txt"], "expected text"),  # was written as ".['txt']"
    ("caption_extension", "txt, caption", "not one file extension"),
    ("optimizer", ["AdamW"], "expected text"),
    ("lr_scheduler", 5, "expected text"),
    ("mixed_precision", True, "expected text"),
    ("shuffle_caption", "yes", "expected true/false"),
    ("text_encoder_lr", "1e-4,x", "expected a number"),
])
def test_string_parsed_values_are_read_whole_or_ignored(tmp_path, key, value, why):
    report = _json(tmp_path, {key: value, "network_dim": 8})
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert why in ignored[key]
    assert [e.source for e in report.by_status("mapped")] == ["network_dim"]


def test_text_encoder_lr_one_per_encoder(tmp_path):
    path = ("train", "optimizer", "text_encoder_lr")
    assert _json(tmp_path, {"text_encoder_lr": "1e-4, 5e-5"}).values[path] == [1e-4, 5e-5]
    assert _json(tmp_path, {"text_encoder_lr": [1e-4, 5e-5]}).values[path] == [1e-4, 5e-5]
    assert _json(tmp_path, {"text_encoder_lr": "5e-5"}).values[path] == 5e-5


# -- counts ---------------------------------------------------------------------------------
DATASET = """\
[general]
caption_extension = ".txt"
shuffle_caption = true

[[datasets]]
resolution = 512
batch_size = 2

  [[datasets.subsets]]
  image_dir = "/data/1_main"
  num_repeats = 1

  [[datasets.subsets]]
  image_dir = "/data/2_back"
  num_repeats = 2
  flip_aug = true
"""


@pytest.fixture
def proj(tmp_path):
    from lorakiln.services.project import init_project

    return init_project(tmp_path / "p", "p", ["ptrig"], base=None)


def _counts(out: str) -> tuple[int, int, int]:
    mapped = int(re.search(r"mapped \((\d+)\)", out).group(1))
    m = re.search(r"project.toml: (\d+) value\(s\) changed, (\d+) already so", out.replace("\n", " "))
    return mapped, int(m.group(1)), int(m.group(2))


def test_import_counts_add_up_with_the_mapped_list(proj, cli, tmp_path):
    (tmp_path / "ds.toml").write_text(DATASET)
    code, out = cli("config", "import", tmp_path / "ds.toml", cwd=proj.root)
    assert code == 0, out
    mapped, changed, same = _counts(out)
    # caption_extension maps onto two settings (two lines); the two repeats are two settings
    assert mapped == 8 and (changed, same) == (8, 0), out
    code, out = cli("config", "import", tmp_path / "ds.toml", cwd=proj.root)
    assert _counts(out) == (8, 0, 8)


def test_import_says_which_keys_share_a_setting_and_what_it_removes(proj, cli, tmp_path):
    proj.set_values({("export", "repeats"): {"main": 3, "old": 1}})
    (tmp_path / "k.json").write_text(json.dumps({"epoch": 10, "max_train_epochs": 10, "network_dim": 8}))
    code, out = cli("config", "import", tmp_path / "k.json", cwd=proj.root)
    flat = " ".join(out.split())
    assert code == 0 and _counts(out) == (3, 2, 0), out
    assert "(3 mapped keys set 2 settings: train.max_train_epochs from epoch, max_train_epochs)" in flat
    (tmp_path / "ds.toml").write_text(DATASET)
    code, out = cli("config", "import", tmp_path / "ds.toml", cwd=proj.root)
    assert "1 removed (export.repeats.old)" in " ".join(out.split()), out
