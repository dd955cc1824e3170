"""The toy base model: a small SD1.5 in the original single-file layout that kiln's sd15 loader
reads through the configs embedded in its metadata; the committed weights load and denoise."""

import json

import numpy as np
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


@pytest.fixture(scope="module")
def committed():
    path = weights_path()
    assert path.is_file(), f"{path} is missing: the toy base's weights are committed with the repository"
    return arch.load_with_kiln(path)


def test_committed_base_has_the_toy_sizes(committed):
    fam, comps = committed
    assert fam.name == "sd15" and comps.prediction_type == "epsilon"
    assert list(comps.unet.config.block_out_channels) == arch.UNET["block_out_channels"]
    assert comps.unet.config.cross_attention_dim == comps.text_encoders[0].config.hidden_size == 64
    assert list(comps.vae.config.block_out_channels) == arch.VAE["block_out_channels"]
    assert 0.1 < comps.vae.config.scaling_factor < 10  # measured on the latents, not SD's 0.18215
    assert comps.tokenizers[0].model_max_length == 77 and len(comps.tokenizers[0]) == 49408


def test_committed_base_denoises_a_render(committed):
    """A 64x64 render is a 16x16x4 latent, and one denoising step through kiln's sd15 prompt
    encoding and denoiser call predicts the noise far better than a guess of zero would."""
    from lorakiln.toyworld import Mix, generate
    from lorakiln.toyworld.base import data

    fam, comps = committed
    shots = list(generate(4, seed=123, mix=Mix(two_figures=0.0)))
    pixels = data.to_pixels(np.stack([np.asarray(s.image.convert("RGB")) for s in shots]))
    gen = torch.Generator().manual_seed(0)
    z = fam.encode_latents(comps, pixels, sample=False)
    assert z.shape == (4, 4, 16, 16)
    cond = fam.encode_prompts(comps, [data.prompt(*s.tags.general) for s in shots])
    noise = torch.randn(z.shape, generator=gen)
    t = torch.full((4,), 400)
    with torch.no_grad():
        pred = fam.predict(comps, comps.noise_scheduler.add_noise(z, noise, t), t, cond)
    assert pred.shape == z.shape and torch.isfinite(pred).all()
    assert (pred - noise).pow(2).mean().item() < 0.5  # zero would score 1.0
