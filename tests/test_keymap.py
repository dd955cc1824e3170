"""diffusers <-> LDM/SGM name maps, checked by name and against diffusers' own single-file converter."""

import pytest
import torch

from lorakiln.formats.keymap import (
    UNetLayout,
    openclip_state_dict,
    openclip_to_ldm,
    state_dict_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
    vae_value_to_ldm,
)
from lorakiln.train.families import FAMILIES
from lorakiln.train.families.loading import config_dir


SDXL = UNetLayout(2, (False, True, True), (True, True, False))
SD15 = UNetLayout(2, (True, True, True, False), (False, True, True, True))


def test_layout_from_bundled_configs():
    import json

    for name, expected in (("sdxl", SDXL), ("sd15", SD15)):
        cfg = json.loads((config_dir(name) / "unet" / "config.json").read_text())
        assert UNetLayout.from_config(cfg) == expected


@pytest.mark.parametrize("diffusers,sgm", [
    ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.4.1.transformer_blocks.0.attn1.to_q"),
    ("down_blocks.2.attentions.1.proj_out.weight", "input_blocks.8.1.proj_out.weight"),
    ("down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2"),
    ("down_blocks.0.resnets.1.norm1.bias", "input_blocks.2.0.in_layers.0.bias"),
    ("down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight"),
    ("down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
    ("down_blocks.1.downsamplers.0.conv.bias", "input_blocks.6.0.op.bias"),
    ("mid_block.resnets.0.time_emb_proj", "middle_block.0.emb_layers.1"),
    ("mid_block.attentions.0.transformer_blocks.9.ff.net.2", "middle_block.1.transformer_blocks.9.ff.net.2"),
    ("mid_block.resnets.1.conv2.weight", "middle_block.2.out_layers.3.weight"),
    ("up_blocks.0.resnets.0.norm2.weight", "output_blocks.0.0.out_layers.0.weight"),
    ("up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"),
    ("up_blocks.1.attentions.2.proj_in", "output_blocks.5.1.proj_in"),
    ("up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight"),
    ("up_blocks.2.resnets.2.conv_shortcut", "output_blocks.8.0.skip_connection"),
    ("conv_in.weight", "input_blocks.0.0.weight"),
    ("time_embedding.linear_2.bias", "time_embed.2.bias"),
    ("add_embedding.linear_1.weight", "label_emb.0.0.weight"),
    ("conv_norm_out.weight", "out.0.weight"),
    ("conv_out.bias", "out.2.bias"),
])
def test_sdxl_unet_names(diffusers, sgm):
    assert unet_to_ldm(diffusers, SDXL) == sgm


@pytest.mark.parametrize("diffusers,ldm", [
    ("down_blocks.0.attentions.1.proj_in", "input_blocks.2.1.proj_in"),
    ("down_blocks.3.resnets.1.conv2", "input_blocks.11.0.out_layers.3"),
    ("down_blocks.2.downsamplers.0.conv", "input_blocks.9.0.op"),
    ("up_blocks.0.upsamplers.0.conv", "output_blocks.2.1.conv"),  # no attention at this level: slot 1
    ("up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"),
    ("up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k", "output_blocks.11.1.transformer_blocks.0.attn2.to_k"),
])
def test_sd15_unet_names(diffusers, ldm):
    assert unet_to_ldm(diffusers, SD15) == ldm


def test_unknown_unet_name_is_refused():
    with pytest.raises(KeyError):
        unet_to_ldm("encoder.layers.0", SDXL)


@pytest.mark.parametrize("diffusers,ldm", [
    ("encoder.down_blocks.0.resnets.1.conv1.weight", "encoder.down.0.block.1.conv1.weight"),
    ("encoder.down_blocks.1.resnets.0.conv_shortcut.bias", "encoder.down.1.block.0.nin_shortcut.bias"),
    ("encoder.down_blocks.2.downsamplers.0.conv.weight", "encoder.down.2.downsample.conv.weight"),
    ("encoder.mid_block.attentions.0.to_q.weight", "encoder.mid.attn_1.q.weight"),
    ("decoder.mid_block.attentions.0.to_out.0.bias", "decoder.mid.attn_1.proj_out.bias"),
    ("decoder.mid_block.attentions.0.group_norm.weight", "decoder.mid.attn_1.norm.weight"),
    ("decoder.mid_block.resnets.1.norm2.weight", "decoder.mid.block_2.norm2.weight"),
    ("decoder.up_blocks.0.resnets.2.conv2.weight", "decoder.up.3.block.2.conv2.weight"),
    ("decoder.up_blocks.2.upsamplers.0.conv.bias", "decoder.up.1.upsample.conv.bias"),
    ("encoder.conv_norm_out.weight", "encoder.norm_out.weight"),
    ("quant_conv.weight", "quant_conv.weight"),
])
def test_vae_names(diffusers, ldm):
    assert vae_to_ldm(diffusers) == ldm


def test_vae_attention_linear_becomes_1x1_conv():
    w = torch.randn(8, 8)
    assert vae_value_to_ldm("decoder.mid_block.attentions.0.to_q.weight", w).shape == (8, 8, 1, 1)
    assert vae_value_to_ldm("decoder.mid_block.attentions.0.to_q.bias", torch.zeros(8)).shape == (8,)


def test_openclip_fused_qkv_and_projection():
    width = 4
    assert openclip_to_ldm("text_model.encoder.layers.3.self_attn.k_proj.weight", width) == \
        ("transformer.resblocks.3.attn.in_proj_weight", slice(4, 8))
    assert openclip_to_ldm("encoder.layers.0.mlp.fc2.bias", width) == ("transformer.resblocks.0.mlp.c_proj.bias", None)
    q, k, v = (torch.full((width, width), float(i)) for i in range(3))
    proj = torch.arange(width * 6.0).reshape(6, width)  # Linear(width -> 6)
    sd = {"text_model.encoder.layers.0.self_attn.q_proj.weight": q,
          "text_model.encoder.layers.0.self_attn.k_proj.weight": k,
          "text_model.encoder.layers.0.self_attn.v_proj.weight": v, "text_projection.weight": proj}
    out = openclip_state_dict(sd, width)
    fused = out["transformer.resblocks.0.attn.in_proj_weight"]
    assert fused.shape == (12, 4) and torch.equal(fused[4:8], k)
    assert torch.equal(out["text_projection"], proj.T)
    assert "logit_scale" in out


@pytest.mark.parametrize("name,arch", [("sd15", "sd15"), ("sdxl", "sdxl")])
def test_full_size_names_round_trip_through_diffusers_converter(name, arch):
    """Our diffusers->LDM map, inverted by diffusers' own single-file converter, gives back every key."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    comps = FAMILIES.get(name).build_empty("meta")
    unet_sd, vae_sd = comps.unet.state_dict(), comps.vae.state_dict()
    te_sds = [te.state_dict() for te in comps.text_encoders]
    ldm = state_dict_to_ldm(arch, unet_sd, vae_sd, te_sds, UNetLayout.from_config(comps.unet.config))
    back = convert_ldm_unet_checkpoint(ldm, dict(comps.unet.config))
    assert set(back) == set(unet_sd) and all(back[k].shape == v.shape for k, v in unet_sd.items())
    back = convert_ldm_vae_checkpoint(ldm, dict(comps.vae.config))
    assert set(back) == set(vae_sd) and all(back[k].shape == v.shape for k, v in vae_sd.items())
    te_prefix = "cond_stage_model.transformer." if arch == "sd15" else "conditioner.embedders.0.transformer."
    back = {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(ldm, te_prefix).items()}
    assert set(back) == set(te_sds[0])
    if arch == "sdxl":
        back = convert_open_clip_checkpoint(comps.text_encoders[1], ldm, prefix="conditioner.embedders.1.model.")
        assert set(back) == set(te_sds[1]) and all(back[k].shape == v.shape for k, v in te_sds[1].items())
