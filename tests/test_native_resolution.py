"""A base file's own resolution (modelspec.resolution) sets the buckets and the sampling size:
the toy base is 64x64, where the sd15 family's default would scale everything to 512."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from tiny_run import make_dataset

from lorakiln.formats.lora_file import read_metadata
from lorakiln.services.train import plan_training, request_from_folder
from lorakiln.toyworld.base import weights_path
from lorakiln.train.families import FAMILIES
from lorakiln.train.families.resolution import native_resolution


def test_the_toy_base_is_64_and_other_files_keep_the_family_default(tmp_path):
    sd15 = FAMILIES.get("sd15")
    assert native_resolution(sd15, str(weights_path())) == 64
    assert native_resolution(sd15, None) == 512 and native_resolution(sd15, "owner/repo") == 512
    odd = tmp_path / "odd.safetensors"
    save_file({"x": load_file(str(weights_path()))["first_stage_model.decoder.conv_out.bias"]}, str(odd),
              metadata={"modelspec.resolution": "huge"})
    assert native_resolution(sd15, str(odd)) == 512


def test_training_on_the_toy_base_buckets_at_its_own_size(tmp_path):
    data = make_dataset(tmp_path).parent
    cli = {"base": str(weights_path()), "max_train_epochs": 1, "data": {"train_data_dir": str(data)}}
    plan = plan_training(request_from_folder(cli, tmp_path))
    assert plan.resolution == (64, 64)
    assert read_metadata(weights_path())["modelspec.resolution"] == "64x64"


def test_sampling_on_the_toy_base_defaults_to_its_own_size():
    from lorakiln.config.eval import EvalConfig
    from lorakiln.evaluate.library import LoraLibrary
    from lorakiln.services.sample import Session

    s = Session(EvalConfig(), str(weights_path()), LoraLibrary([]))
    assert s.size() == (64, 64) and s.size(128, 96) == (128, 96)
    assert Path(s.base).is_file()


def test_plan_reads_the_family_of_a_base_given_as_a_file(tmp_path):
    from lorakiln.services.plan import base_arch

    assert base_arch(str(weights_path())) == "sd15"
    assert base_arch(str(tmp_path / "missing.safetensors")) is None
