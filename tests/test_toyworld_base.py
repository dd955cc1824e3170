"""The toy base model: a small SD1.5 in the original single-file layout that kiln's sd15 loader
reads through the configs embedded in its metadata; the committed weights load and denoise."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lorakiln.core.errors import ConfigError
from lorakiln.toyworld.base import arch, weights_path
from lorakiln.train.families.embedded_config import KEY
from lorakiln.train.families.loading import checkpoint_keys


@pytest.fixture(scope="module")
def random_file(tmp_path_factory):
    unet, vae, te = arch.build(seed=3)
    path = arch.save_single_file(tmp_path_factory.mktemp("toy") / "toy.safetensors", unet, vae, te,
                                 dtype=torch.float32)
    return path, (unet, vae, te)


def test_small_sd15_file_loads_exactly_through_the_sd15_family(random_file, tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    path, parts = random_file
    keys = checkpoint_keys(path)
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("first_stage_model.encoder.down.2.") for k in keys)
    assert any(k.startswith("cond_stage_model.transformer.text_model.encoder.layers.") for k in keys)
    fam, comps = arch.load_with_kiln(path)
    assert fam.name == "sd15"
    for orig, loaded in zip(parts, (comps.unet, comps.vae, comps.text_encoders[0])):
        a, b = orig.state_dict(), loaded.state_dict()
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_embedded_config_names_the_file(random_file, tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = random_file
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(path)), str(bad), metadata={KEY: json.dumps({"unet": {}})})
    with pytest.raises(ConfigError, match="bad.safetensors.*kiln.diffusers_config"):
        arch.load_with_kiln(bad)
