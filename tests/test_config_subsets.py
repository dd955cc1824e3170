"""Per-subset options: a kohya subset's own settings stay with that subset, from `kiln config import`
through project.toml ([train.data.subsets.<name>]) to the options `kiln train` uses for its folder."""

import random

import pytest

from lorakiln.config.importers import import_file, import_text
from lorakiln.core.errors import ConfigError
from lorakiln.services.config_import import import_config
from lorakiln.services.train import plan_training, request_from_project
from lorakiln.train.batches import choose_augment
from lorakiln.train.caption_proc import process_caption
from test_train_fixtures import SPECS, tiny_project, write_subset

DATASET = """\
[general]
shuffle_caption = true
[[datasets]]
resolution = 64
  [[datasets.subsets]]
  image_dir = "/data/1_main"
  num_repeats = 1
  [[datasets.subsets]]
  image_dir = "/data/2_back"
  num_repeats = 2
  flip_aug = true
  caption_dropout_rate = 1.0
  keep_tokens = 0
  face_crop_aug_range = [2.0, 4.0]
  token_warmup_step = 5
"""


def _two_subsets(tmp_path):
    proj = tiny_project(tmp_path / "p")
    write_subset(proj.dataset_dir / "2_back", SPECS[2:])
    return proj


def _options(plan):
    return {s.name: s.options for d in plan.datasets for s in d.spec.subsets}


def test_subset_options_reach_training_for_that_folder_only(tmp_path):
    proj = _two_subsets(tmp_path)
    proj.set_values({("train", "data", "subsets", "back", "flip_aug"): True,
                     ("train", "data", "subsets", "back", "caption_dropout_rate"): 1.0,
                     ("train", "data", "subsets", "bakc", "shuffle_caption"): False})
    plan = plan_training(request_from_project(proj))
    opts = _options(plan)
    back, main = opts["2_back"], opts["1_main"]
    assert back.flip_aug and back.caption_dropout_rate == 1.0 and back.keep_tokens == 1  # the rest inherited
    assert not main.flip_aug and main.caption_dropout_rate == 0.0
    assert any("[train.data.subsets.bakc] matches no subset folder (subsets: back, main)" in n for n in plan.notes)
    # what the step does with them: back's captions are always dropped, main's never; only back flips
    rng = random.Random(0)
    assert process_caption("kilnchan, coat", back, rng) == ""
    assert process_caption("kilnchan, coat", main, rng) == "kilnchan, coat"
    assert any(choose_augment(back, random.Random(i), cached=True).flip for i in range(20))
    assert not any(choose_augment(main, random.Random(i), cached=True).flip for i in range(20))
    # the file's metadata describes each subset with its own options
    subsets = plan.summary().datasets[0]["subsets"]
    assert [s["flip_aug"] for s in subsets] == [False, True]


def test_subset_options_are_checked_like_the_shared_ones(tmp_path):
    proj = _two_subsets(tmp_path)
    with pytest.raises(ConfigError, match=r"data.subsets.back.caption_dropout_rate: Input should be less than"):
        proj.set_values({("train", "data", "subsets", "back", "caption_dropout_rate"): 2.0})
    with pytest.raises(ConfigError, match=r"data.subsets.back.flip_ag: unknown key \(did you mean 'flip_aug'\?\)"):
        proj.set_values({("train", "data", "subsets", "back", "flip_ag"): True})


def test_imported_subset_setting_trains_per_subset(tmp_path):
    proj = _two_subsets(tmp_path)
    (tmp_path / "ds.toml").write_text(DATASET)
    report, applied = import_config(tmp_path / "ds.toml", proj)
    assert applied.written
    text = proj.config_path.read_text()
    assert "[train.data.subsets.back]" in text and "flip_aug = true" in text
    assert proj.get_value(("train", "data", "flip_aug")) is None  # not made global
    assert proj.get_value(("export", "repeats")) == {"main": 1, "back": 2}
    plan = plan_training(request_from_project(proj))
    opts = _options(plan)
    assert opts["2_back"].flip_aug and opts["2_back"].keep_tokens == 0 and not opts["1_main"].flip_aug
    assert opts["1_main"].shuffle_caption and opts["2_back"].shuffle_caption  # [general]: every subset


def test_unsupported_subset_options_are_reported_with_their_subset(tmp_path):
    report = import_text(DATASET, tmp_path / "ds.toml")
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    face = ignored["datasets[0].subsets[1].face_crop_aug_range"]
    assert face.startswith("subset 'back': ") and "no face crop augmentation" in face
    assert "token warmup" in ignored["datasets[0].subsets[1].token_warmup_step"]
    assert not report.by_status("unknown")


def test_dataset_level_options_stay_with_their_dataset_when_there_are_several(tmp_path):
    text = """\
[[datasets]]
flip_aug = true
  [[datasets.subsets]]
  image_dir = "/d/3_a"
[[datasets]]
  [[datasets.subsets]]
  image_dir = "/d/1_b"
  num_repeats = 4
"""
    report = import_text(text, tmp_path / "ds.toml")
    values = {".".join(p): v for p, v in report.values.items()}
    assert values["train.data.subsets.a.flip_aug"] is True and "train.data.flip_aug" not in values
    assert values["export.repeats"] == {"a": 1, "b": 4}


def test_kohya_gui_scheduler_args_map_min_lr(tmp_path):
    p = tmp_path / "cfg.json"
    p.write_text('{"LoRA_type": "Standard", "lr_scheduler": "cosine_with_restarts", '
                 '"lr_scheduler_args": "min_lr=1e-6 T_mult=2"}')
    report = import_file(p)
    mapped = {e.source: (e.target, e.value) for e in report.by_status("mapped")}
    assert mapped["lr_scheduler_args.min_lr"] == ("train.optimizer.min_lr", 1e-6)
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert "not interpreted" in ignored["lr_scheduler_args.T_mult"]
    assert "lr_scheduler_args" not in ignored
    # sd-scripts' own TOML holds them as a list
    report = import_text('lr_scheduler_args = ["min_lr=2e-6", "gamma=0.9"]\n', tmp_path / "sd.toml")
    assert report.values[("train", "optimizer", "min_lr")] == 2e-6
    assert report.values[("train", "optimizer", "lr_scheduler_cycle_decay")] == 0.9


@pytest.mark.parametrize("text, words", [
    ('{"LoRA_type": "Standard", "max_train_epochs": 1e400}', "max_train_epochs"),
    ('{"LoRA_type": "Standard", "network_dim": "1e400"}', "network_dim"),
    ('{"LoRA_type": "Standard", "learning_rate": NaN}', "learning_rate"),
    ('{"LoRA_type": "Standard", "seed": 99999999999999999999999}', "seed"),
])
def test_kohya_json_numbers_out_of_range_are_ignored_with_a_reason(tmp_path, text, words):
    p = tmp_path / "cfg.json"
    p.write_text(text)
    report = import_file(p)
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert words in ignored and words not in {".".join(k[-1:]) for k in report.values}


@pytest.mark.parametrize("text, message", [
    ('{"a":' * 100000 + "1" + "}" * 100000, "nested too deeply"),
    ('{"a":' * 50 + "1" + "}" * 50, "nested more than"),
    ('{"seed": ' + "1" * 5000 + "}", "a value cannot be read"),
])
def test_kohya_json_that_python_cannot_read_names_the_file(tmp_path, cli, text, message):
    p = tmp_path / "cfg.json"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        import_file(p)
    assert str(p) in str(e.value)
    code, out = cli("config", "import", p, "--print", cwd=tmp_path)
    assert code == 1 and message in out


def test_non_utf8_config_to_import_names_the_file(tmp_path):
    p = tmp_path / "cfg.toml"
    p.write_bytes(b"[general]\nkeep_tokens = 1\n# \xff\n")
    with pytest.raises(ConfigError, match=r"cfg.toml: not UTF-8 text \(byte 0xff on line 3\)"):
        import_file(p)


@pytest.mark.parametrize("body, message", [
    ("num_repeats = 'abc'", "num_repeats must be a whole number from 1 to 10000, not 'abc'"),
    ("num_repeats = inf", "num_repeats must be a whole number from 1 to 10000, not inf"),
    ("num_repeats = 99999999999999999999", "num_repeats must be a whole number"),  # would never finish an epoch
    ("num_repeats = 0", "num_repeats must be a whole number"),
    ("flip_ag = true", "unknown key 'flip_ag' (did you mean 'flip_aug'?)"),
    ("caption_dropout_rate = nan", "caption_dropout_rate: Input should be a finite number"),
    ("keep_tokens = -2", "keep_tokens: Input should be greater than or equal to 0"),
])
def test_training_dataset_toml_bad_subset_values(tmp_path, body, message):
    write_subset(tmp_path / "imgs" / "3_a", SPECS[:1])
    p = tmp_path / "ds.toml"
    p.write_text(f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'imgs/3_a'\n{body}\n")
    from lorakiln.config.train import BucketConfig, SubsetOptions
    from lorakiln.train.dataset_toml import load_dataset_toml

    with pytest.raises(ConfigError) as e:
        load_dataset_toml(p, SubsetOptions(), BucketConfig(), 1, [])
    assert str(p) in str(e.value) and message in str(e.value)


@pytest.mark.parametrize("data, message", [
    (b"[[datasets]]\nbatch_size = 0\n[[datasets.subsets]]\nimage_dir = 'x'\n", "batch_size must be a whole number"),
    (b"[[datasets]]\n[[datasets.subsets]]\nimage_dir = 5\n", "image_dir must be a folder path"),
    (b"datasets = 5\n", "datasets must be an array of tables"),
    (b"[[datasets]]\nsubsets = 3\n", "subsets must be written as [[datasets.subsets]]"),
    (b"[general]\n# caf\xe9\n", "not UTF-8 text (byte 0xe9 on line 2)"),
    (b"[[datasets]]\n[[datasets]]\nx = [" + b"[" * 200 + b"]" * 201 + b"\n", "not valid TOML: line 3"),
])
def test_training_dataset_toml_malformed(tmp_path, data, message):
    from lorakiln.config.train import BucketConfig, SubsetOptions
    from lorakiln.train.dataset_toml import load_dataset_toml

    (tmp_path / "x").mkdir()
    p = tmp_path / "ds.toml"
    p.write_bytes(data)
    with pytest.raises(ConfigError) as e:
        load_dataset_toml(p, SubsetOptions(), BucketConfig(), 1, [])
    assert str(p) in str(e.value) and message in str(e.value)


def test_one_bad_subset_repeats_drops_only_that_subset(tmp_path):
    text = ("[[datasets]]\n  [[datasets.subsets]]\n  image_dir = '/d/a'\n  num_repeats = 0\n"
            "  [[datasets.subsets]]\n  image_dir = '/d/b'\n  num_repeats = 3\n")
    report = import_text(text, tmp_path / "ds.toml")
    assert report.values[("export", "repeats")] == {"b": 3}
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert "repeats.a: Input should be greater than or equal to 1" in ignored["datasets[0].subsets[0].num_repeats"]
    assert [e.target for e in report.by_status("mapped")] == ["export.repeats.b"]
