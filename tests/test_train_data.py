"""Subsets from folders and kohya dataset TOMLs, scanning, epoch batches, sample prompt files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lorakiln.config.train import BucketConfig, SubsetOptions
from lorakiln.core.errors import ConfigError
from lorakiln.train.batches import epoch_batches
from lorakiln.train.buckets import choose_bucket, resolve_spec
from lorakiln.train.data import DatasetSpec, folder_subsets, parse_folder_name, scan_dataset
from lorakiln.train.dataset_toml import load_dataset_toml
from lorakiln.train.sample_prompts import SamplePrompt, parse_prompts
from test_train_fixtures import SPECS, write_subset

OPTS = SubsetOptions(keep_tokens=1)


def test_folder_names():
    assert parse_folder_name("10_kafka hsr") == (10, "kafka hsr")
    assert parse_folder_name("kafka") is None


def test_kohya_folder_layout_with_repeats_notes_and_bad_images(tmp_path):
    write_subset(tmp_path / "10_main", SPECS[:2])
    write_subset(tmp_path / "3_swimsuit", SPECS[2:])
    write_subset(tmp_path / "no_prefix", SPECS[:1])
    (tmp_path / "10_main" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "3_swimsuit" / "000.txt").unlink()  # no caption: class tokens instead
    notes: list[str] = []
    subs = folder_subsets(tmp_path, OPTS, notes=notes)
    assert [(s.name, s.num_repeats, s.class_tokens) for s in subs] == [("10_main", 10, "main"),
                                                                       ("3_swimsuit", 3, "swimsuit")]
    assert any("no_prefix" in n and "N_name" in n for n in notes)
    scanned = scan_dataset(DatasetSpec(subs, BucketConfig(), 2))
    assert len(scanned.items) == 4
    assert [Path(p).name for p, _ in scanned.problems] == ["broken.png"]
    assert "unreadable" in scanned.problems[0][1]
    captions = {it.path.name: it.caption for it in scanned.items if it.subset == 1}
    assert captions["000.png"] == "swimsuit"
    assert captions["001.png"].startswith("kilnchan, 1girl")
    assert any("without a .txt caption" in n for n in scanned.notes)


def test_single_image_folder_and_empty_folder(tmp_path):
    write_subset(tmp_path / "5_solo", SPECS[:1])
    subs = folder_subsets(tmp_path / "5_solo", OPTS)
    assert [(s.name, s.num_repeats) for s in subs] == [("5_solo", 5)]
    plain = tmp_path / "plain"
    write_subset(plain, SPECS[:1])
    assert folder_subsets(plain, OPTS, default_repeats=2)[0].num_repeats == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        folder_subsets(tmp_path / "empty", OPTS)
    with pytest.raises(ConfigError, match="does not exist"):
        folder_subsets(tmp_path / "missing", OPTS)


DATASET_TOML = """
[general]
shuffle_caption = true
caption_extension = ".txt"
keep_tokens = 1
flip_aug = true

[[datasets]]
resolution = 512
batch_size = 4
enable_bucket = true
bucket_reso_steps = 64

  [[datasets.subsets]]
  image_dir = "10_main"
  num_repeats = 5
  keep_tokens = 2
  keep_tokens_separator = "|||"

  [[datasets.subsets]]
  image_dir = "reg"
  is_reg = true
  class_tokens = "1girl"
  flip_aug = false
  face_crop_aug_range = [2.0, 4.0]

[[datasets]]
resolution = [768, 768]
  [[datasets.subsets]]
  image_dir = "10_main"
"""


def test_kohya_dataset_toml_levels_ascend(tmp_path):
    write_subset(tmp_path / "10_main", SPECS[:2])
    write_subset(tmp_path / "reg", SPECS[2:])
    (tmp_path / "ds.toml").write_text(DATASET_TOML)
    notes: list[str] = []
    sets = load_dataset_toml(tmp_path / "ds.toml", SubsetOptions(), BucketConfig(min_bucket_reso=128), 1, notes)
    assert len(sets) == 2
    a, b = sets
    assert a.batch_size == 4 and a.buckets.resolution == 512 and a.buckets.min_bucket_reso == 128
    main, reg = a.subsets
    assert main.num_repeats == 5  # the TOML's num_repeats, not the folder prefix (kohya)
    assert main.options.keep_tokens == 2 and main.options.shuffle_caption and main.options.flip_aug
    assert main.options.keep_tokens_separator == "|||"
    assert reg.is_reg and reg.class_tokens == "1girl" and not reg.options.flip_aug and reg.num_repeats == 1
    assert b.buckets.resolution == (768, 768) and b.batch_size == 1
    assert b.subsets[0].num_repeats == 1
    assert any("face_crop_aug_range ignored" in n for n in notes)


@pytest.mark.parametrize("text,message", [
    ("[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\nbogus = 1\n", "unknown key 'bogus'"),
    ("[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2\n", "image_dir is required"),
    ("[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'nowhere'\n", "not a folder"),
    ("[general]\nkeep_tokens = 1\n", "no \\[\\[datasets\\]\\]"),
    ("[[datasets]]\n[[datasets.subsets]]\nmetadata_file = 'm.json'\n", "metadata_file"),
    ("not toml = = 1", "not valid TOML"),
])
def test_dataset_toml_errors_name_the_file(tmp_path, text, message):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_dataset_toml(p, SubsetOptions(), BucketConfig(), 1, [])
    assert "bad.toml" in str(e.value)


def _scanned(tmp_path, reg: bool = False, batch: int = 2):
    write_subset(tmp_path / "3_main", SPECS[:3])
    subs = folder_subsets(tmp_path, OPTS)
    if reg:
        write_subset(tmp_path.parent / f"reg_{tmp_path.name}" / "1_girl", SPECS[3:])
        subs += folder_subsets(tmp_path.parent / f"reg_{tmp_path.name}", OPTS, is_reg=True)
    s = scan_dataset(DatasetSpec(subs, BucketConfig(), batch))
    spec = resolve_spec(BucketConfig(resolution=64, min_bucket_reso=64, max_bucket_reso=128), 64, "sd15")
    for it in s.items:
        it.bucket = choose_bucket(it.size, spec)
    return s


def test_epoch_batches_repeats_buckets_and_determinism(tmp_path):
    s = _scanned(tmp_path)
    b1 = epoch_batches([s], seed=1, epoch=1)
    seen = Counter(r.item for b in b1 for r in b.refs)
    assert seen == {0: 3, 1: 3, 2: 3}  # every image x its repeats
    assert all(len({s.items[r.item].bucket for r in b.refs}) == 1 for b in b1)  # one bucket per batch
    assert epoch_batches([s], 1, 1) == b1  # a pure function of (seed, epoch)
    assert epoch_batches([s], 1, 2) != b1
    assert epoch_batches([s], 2, 1) != b1


def test_every_process_gets_the_same_number_of_batches(tmp_path):
    """Several GPUs: unequal shares made the process with more batches wait forever in the gradient
    all-reduce (seen with torchrun --nproc-per-node 2 on 11 batches)."""
    from lorakiln.train.loop import rank_batches, total_steps

    s = _scanned(tmp_path, batch=2)
    batches = epoch_batches([s], seed=1, epoch=1)
    assert len(batches) % 2 == 1  # an odd count is the case that hung
    for world in (1, 2, 3, len(batches) + 2):
        shares = [rank_batches(batches, r, world) for r in range(world)]
        per_process, _ = total_steps(len(batches), 1, 1, world)
        assert {len(sh) for sh in shares} == {per_process}
        assert {b for sh in shares for b in sh} == set(batches)  # nothing left out


def test_regularisation_fills_as_many_samples_as_training(tmp_path):
    s = _scanned(tmp_path, reg=True)
    batches = epoch_batches([s], 0, 1)
    kinds = Counter(s.spec.subsets[s.items[r.item].subset].is_reg for b in batches for r in b.refs)
    assert kinds == {False: 9, True: 9}


def test_seed_001_step_tables():
    """images x repeats x epochs / batch = steps, seed 001's Holostrawberry table, one bucket."""
    from lorakiln.train.dryrun import steps_table

    class FakeScan:  # the table only needs counts: a real ScannedDataset shape without files
        def __init__(self, n, repeats, bs):
            from lorakiln.train.data import Item, SubsetSpec

            sub = SubsetSpec(f"{repeats}_x", Path("."), repeats, OPTS)
            self.spec = DatasetSpec([sub], BucketConfig(), bs)
            self.items = [Item(Path(f"{i}.png"), "", (512, 512), 0, str(i), (512, 512)) for i in range(n)]

        def subset_items(self, i):
            return self.items

    for images, repeats, epochs, bs, steps in [(20, 10, 10, 2, 1000), (100, 3, 10, 2, 1500), (400, 1, 10, 2, 2000),
                                               (1000, 1, 10, 3, 3340)]:
        t = steps_table([FakeScan(images, repeats, bs)], epochs)
        assert t.total_steps == steps
        assert f"{images} images x {repeats} repeats = {images * repeats}" in t.lines()[0]
        assert f"{images * repeats} samples x {epochs} epochs / batch {bs} = " in t.lines()[1]
    t = steps_table([FakeScan(20, 10, 2)], 10, grad_accum=2, max_train_steps=300)
    assert (t.steps_per_epoch, t.total_steps) == (50, 300)


def test_sample_prompt_file_kohya_syntax():
    text = """# comment line
masterpiece, kilnchan, 1girl --n lowres, bad hands --w 512 --h 768 --d 42 --s 28 --l 7.5 --ss euler_a

kilnchan, smile --s 5000 --w 500
kilnchan --g 3.5
"""
    prompts, notes = parse_prompts(text, "prompts.txt")
    assert prompts[0] == SamplePrompt("masterpiece, kilnchan, 1girl", "lowres, bad hands", 512, 768, 42, 28, 7.5,
                                      "euler_a")
    assert prompts[1].steps == 1000 and prompts[1].width == 496  # clamped, rounded down to /8
    assert prompts[2].prompt == "kilnchan" and any("--g" in n for n in notes)
    with pytest.raises(ConfigError, match=r"prompts.txt: line 1: unknown option --zz"):
        parse_prompts("a --zz 1", "prompts.txt")
    with pytest.raises(ConfigError, match="line 2: --w: 'wide' is not a number"):
        parse_prompts("ok\nb --w wide", "prompts.txt")


def test_plan_from_dataset_toml_with_regularisation(tmp_path):
    from lorakiln.services.train import plan_training, request_from_project
    from test_train_fixtures import tiny_project

    write_subset(tmp_path / "imgs" / "10_main", SPECS[:2])
    write_subset(tmp_path / "imgs" / "reg", SPECS[2:])
    (tmp_path / "ds.toml").write_text(
        "[general]\nshuffle_caption = false\n[[datasets]]\nbatch_size = 2\nresolution = 64\nmin_bucket_reso = 64\n"
        "max_bucket_reso = 128\n[[datasets.subsets]]\nimage_dir = 'imgs/10_main'\nnum_repeats = 3\n"
        "[[datasets.subsets]]\nimage_dir = 'imgs/reg'\nis_reg = true\n")
    proj = tiny_project(tmp_path / "p")
    plan = plan_training(request_from_project(proj, {"data": {"dataset_config": str(tmp_path / "ds.toml")}}))
    lines = plan.steps.lines()
    assert lines[0] == "10_main: 2 images x 3 repeats = 6"
    assert lines[1] == "reg (regularisation): 2 images x 1 repeats = 2"
    assert "6 (+6 regularisation) samples x 2 epochs / batch 2 = 12 steps" in lines[2]  # tiny-sd15 preset: 2 epochs
    summary = plan.summary()
    assert summary.dataset_dirs == {"10_main": {"n_repeats": 3, "img_count": 2}}
    assert summary.reg_dataset_dirs == {"reg": {"n_repeats": 1, "img_count": 2}}
    assert summary.num_train_images == 6 and summary.num_reg_images == 2
