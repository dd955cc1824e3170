"""Loading bases offline: single files in LDM/SGM layout, diffusers folders, external VAEs,
family detection, pickle refusal and the messages for wrong or missing files."""

import json
import socket

import pytest
import torch
from safetensors.torch import save_file

from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.formats.keymap import UNetLayout, state_dict_to_ldm
from lorakiln.train.families import FAMILIES
from lorakiln.train.families.loading import base_kind, detect_arch, detect_family


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _ldm(comps, arch):
    layout = UNetLayout.from_config(comps.unet.config)
    return state_dict_to_ldm(arch, comps.unet.state_dict(), comps.vae.state_dict(),
                             [te.state_dict() for te in comps.text_encoders], layout,
                             len(comps.vae.config.block_out_channels))


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """Each tiny model and its single-file checkpoint written in the original LDM/SGM layout."""
    out = {}
    for name, arch in (("tiny-sd15", "sd15"), ("tiny-sdxl", "sdxl")):
        fam = FAMILIES.get(name)
        comps = fam.load(name)
        path = tmp_path_factory.mktemp(name) / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in _ldm(comps, arch).items()}, str(path))
        out[name] = (fam, comps, path)
    return out


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sdxl"])
def test_single_file_ldm_layout_loads_exactly(tiny_files, name, no_network):
    fam, comps, path = tiny_files[name]
    loaded = fam.load(str(path))
    _same_weights(comps.unet, loaded.unet)
    _same_weights(comps.vae, loaded.vae)
    for a, b in zip(comps.text_encoders, loaded.text_encoders):
        _same_weights(a, b)
    caps = ["a cat", "1girl, solo, red hair"]
    c1, c2 = fam.encode_prompts(comps, caps), fam.encode_prompts(loaded, caps)
    lat, t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([100, 700])
    assert torch.equal(fam.predict(comps, lat, t, c1), fam.predict(loaded, lat, t, c2))
    assert loaded.source["name"] == path.name and len(loaded.source["legacy_hash"]) == 8


def test_single_file_keys_look_like_the_originals(tiny_files):
    keys = set(_ldm(tiny_files["tiny-sdxl"][1], "sdxl"))
    for k in ("model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight",
              "model.diffusion_model.output_blocks.2.2.conv.weight", "model.diffusion_model.label_emb.0.0.weight",
              "first_stage_model.decoder.up.0.block.0.conv1.weight", "first_stage_model.encoder.mid.attn_1.q.weight",
              "conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
              "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight",
              "conditioner.embedders.1.model.text_projection"):
        assert k in keys, k


def test_diffusers_folder_and_vae_options(tiny_files, tmp_path, no_network):
    fam, comps, _ = tiny_files["tiny-sdxl"]
    folder = tmp_path / "tiny-xl"
    comps.unet.save_pretrained(folder / "unet")
    comps.vae.save_pretrained(folder / "vae")
    comps.text_encoders[0].save_pretrained(folder / "text_encoder")
    comps.text_encoders[1].save_pretrained(folder / "text_encoder_2")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    assert base_kind(str(folder)) == "folder" and detect_family(str(folder)) == "sdxl"
    loaded = fam.load(str(folder))
    _same_weights(comps.unet, loaded.unet)
    _same_weights(comps.text_encoders[1], loaded.text_encoders[1])
    assert loaded.source == {"name": "tiny-xl", "kind": "folder"}
    # external VAE: a diffusers folder, or a single file (diffusers keys or LDM keys)
    other = FAMILIES.get("tiny-sd15").load("tiny-sd15").vae  # different seed path -> different weights
    other.save_pretrained(tmp_path / "vae-folder")
    save_file(other.state_dict(), str(tmp_path / "vae.safetensors"))
    from lorakiln.formats.keymap import vae_to_ldm, vae_value_to_ldm

    save_file({vae_to_ldm(k): vae_value_to_ldm(k, v).contiguous() for k, v in other.state_dict().items()},
              str(tmp_path / "vae-ldm.safetensors"))
    for vae in (tmp_path / "vae-folder", tmp_path / "vae.safetensors", tmp_path / "vae-ldm.safetensors"):
        with_vae = fam.load(str(folder), vae=str(vae))
        _same_weights(other, with_vae.vae)
        assert with_vae.source["vae"] == vae.name
        assert with_vae.vae.dtype == torch.float32  # SDXL's VAE stays fp32 (force_upcast)


def test_vae_runs_in_fp32_while_the_rest_is_half(tiny_files):
    fam, _, path = tiny_files["tiny-sdxl"]
    comps = fam.load(str(path), dtype=torch.bfloat16)
    assert comps.unet.dtype == torch.bfloat16 and comps.vae.dtype == torch.float32
    assert comps.text_encoders[1].dtype == torch.bfloat16
    lat = fam.encode_latents(comps, torch.rand(1, 3, 64, 64) * 2 - 1)
    assert lat.dtype == torch.float32 and lat.shape == (1, 4, 8, 8)


def test_detect_arch_from_keys():
    assert detect_arch(["conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
                        "model.diffusion_model.input_blocks.0.0.weight"], "x") == "sdxl"
    assert detect_arch(["cond_stage_model.transformer.text_model.final_layer_norm.weight"], "x") == "sd15"
    with pytest.raises(ConfigError, match="Stable Diffusion 2"):
        detect_arch(["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"], "m.safetensors")
    with pytest.raises(ConfigError, match="refiner"):
        detect_arch(["conditioner.embedders.0.model.transformer.resblocks.0.ln_1.weight"], "r.safetensors")
    with pytest.raises(ConfigError, match="U-Net-only or unknown"):
        detect_arch(["model.diffusion_model.input_blocks.0.0.weight"], "u.safetensors")
    with pytest.raises(ConfigError, match="is it a LoRA"):
        detect_arch(["lora_unet_input_blocks_4_1_proj_in.lora_down.weight"], "l.safetensors")


def test_detect_family_of_files(tiny_files):
    assert detect_family(str(tiny_files["tiny-sd15"][2])) == "sd15"
    assert detect_family(str(tiny_files["tiny-sdxl"][2])) == "sdxl"


def test_wrong_family_is_named(tiny_files):
    with pytest.raises(ConfigError, match="is an sdxl model, but the family is tiny-sd15"):
        FAMILIES.get("tiny-sd15").load(str(tiny_files["tiny-sdxl"][2]))


def test_pickle_refused_unless_allowed(tiny_files, tmp_path):
    fam, comps, path = tiny_files["tiny-sd15"]
    from safetensors.torch import load_file

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(str(path))}, ckpt)
    with pytest.raises(KilnError, match="pickled checkpoint.*refused.*allow_pickle"):
        fam.load(str(ckpt))
    with pytest.raises(KilnError, match="pickled"):
        detect_family(str(ckpt))
    loaded = fam.load(str(ckpt), allow_pickle=True)
    _same_weights(comps.unet, loaded.unet)


def test_missing_and_wrong_files(tmp_path):
    fam = FAMILIES.get("sdxl")
    with pytest.raises(ConfigError, match="nope.safetensors: base model file not found"):
        fam.load(str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_text("this is not a model")
    with pytest.raises(KilnError, match="bad.safetensors.*not a safetensors file"):
        fam.load(str(bad))
    trunc = tmp_path / "trunc.safetensors"
    save_file({"model.diffusion_model.x": torch.zeros(1000)}, str(trunc))
    trunc.write_bytes(trunc.read_bytes()[:-100])
    with pytest.raises(KilnError, match="trunc.safetensors.*truncated"):
        fam.load(str(trunc))
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(ConfigError, match="not a diffusers model"):
        fam.load(str(tmp_path / "empty-folder"))
    with pytest.raises(KilnError, match="not a file, a diffusers folder or a hub repo id"):
        fam.load("not a model")
    with pytest.raises(KilnError, match="names a preset, not a model.*'cagliostrolab/animagine-xl-3.1'"):
        fam.load("animagine-xl-3.1")


def test_hub_id_offline_gives_a_clear_message(no_network, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KilnError, match="someone/not-cached.*cannot get it"):
        FAMILIES.get("sdxl").load("someone/not-cached")


def test_checkpoint_without_vae_needs_an_external_one(tiny_files, tmp_path):
    fam, comps, _ = tiny_files["tiny-sd15"]
    ldm = {k: v.contiguous() for k, v in _ldm(comps, "sd15").items() if not k.startswith("first_stage_model.")}
    path = tmp_path / "no-vae.safetensors"
    save_file(ldm, str(path))
    with pytest.raises(ConfigError, match="no-vae.safetensors: has no VAE weights.*external VAE"):
        fam.load(str(path))
    comps.vae.save_pretrained(tmp_path / "vae")
    _same_weights(comps.vae, fam.load(str(path), vae=str(tmp_path / "vae")).vae)


def test_unreachable_hub_reads_only_the_cache_at_once(unreachable_hub, monkeypatch, capfd, caplog):
    """Not offline by setting, but no hub: one refused connection, then the cache; no retries."""
    real = socket.create_connection

    def local_only(address, *args, **kwargs):
        if address[0] != "127.0.0.1":
            raise AssertionError(f"network access attempted: {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)
    with pytest.raises(KilnError, match="someone/not-cached.*cannot get it"):
        FAMILIES.get("sdxl").load("someone/not-cached")
    out = capfd.readouterr()
    assert "Retrying" not in out.err + out.out + caplog.text
