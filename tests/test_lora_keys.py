"""`kiln lora keys`: kohya's module names and counts on the full-size architectures."""

import re

import pytest

from lorakiln.train.families import FAMILIES
from lorakiln.train.network import NetworkSpec, planned_modules

# kohya logs "create LoRA for U-Net: 192 modules" (SD1.5) / "722 modules" (SDXL) and
# "264 modules" for the two SDXL text encoders (reference/eval-merge-formats.md §3.1);
# with conv_dim (LoCon) the ResNet convs, time projections, shortcuts and samplers add 86 / 66.


COUNTS = {
    ("sd15", False): {"te": 72, "unet": 192},
    ("sd15", True): {"te": 72, "unet": 278},
    ("sdxl", False): {"te1": 72, "te2": 192, "unet": 722},
    ("sdxl", True): {"te1": 72, "te2": 192, "unet": 788},
}


@pytest.fixture(scope="module")
def names():
    """Module names per (family, conv) from the meta-device architecture."""
    out = {}
    for fam_name in ("sd15", "sdxl"):
        fam = FAMILIES.get(fam_name)
        comps = fam.build_empty("meta")
        for conv in (False, True):
            out[fam_name, conv] = list(planned_modules(fam, NetworkSpec("lora", conv_dim=4 if conv else None), comps))
    return out


def _count(names):
    out: dict[str, int] = {}
    for n in names:
        part = n.split("_")[1]
        out[part] = out.get(part, 0) + 1
    return out


@pytest.mark.parametrize("key", list(COUNTS))
def test_counts_match_kohya(names, key):
    assert _count(names[key]) == COUNTS[key]


def test_sdxl_uses_sgm_names(names):
    xl = names["sdxl", True]
    unet = [n for n in xl if n.startswith("lora_unet_")]
    assert all(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_\d", n) for n in unet)
    for expected in ("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
                     "lora_unet_input_blocks_8_1_transformer_blocks_1_ff_net_0_proj",
                     "lora_unet_middle_block_1_transformer_blocks_9_attn2_to_out_0",
                     "lora_unet_output_blocks_3_0_in_layers_2", "lora_unet_output_blocks_3_0_out_layers_3",
                     "lora_unet_output_blocks_3_0_emb_layers_1", "lora_unet_output_blocks_3_0_skip_connection",
                     "lora_unet_output_blocks_2_2_conv", "lora_unet_input_blocks_3_0_op",
                     "lora_te1_text_model_encoder_layers_11_self_attn_k_proj",
                     "lora_te2_text_model_encoder_layers_31_mlp_fc2"):
        assert expected in xl, expected
    assert not any(n.startswith("lora_te_") for n in xl)


def test_sd15_uses_diffusers_names(names):
    one = names["sd15", True]
    assert not any(k in n for n in one for k in ("input_blocks", "output_blocks", "middle_block"))
    for expected in ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
                     "lora_unet_down_blocks_0_attentions_0_proj_in", "lora_unet_mid_block_attentions_0_proj_out",
                     "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2",
                     "lora_unet_down_blocks_0_resnets_0_conv1", "lora_unet_down_blocks_0_downsamplers_0_conv",
                     "lora_unet_up_blocks_0_upsamplers_0_conv", "lora_unet_up_blocks_1_resnets_2_conv_shortcut",
                     "lora_unet_mid_block_resnets_1_time_emb_proj",
                     "lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_te_text_model_encoder_layers_11_mlp_fc1"):
        assert expected in one, expected
    assert not any(n.startswith(("lora_te1_", "lora_te2_")) for n in one)


@pytest.mark.parametrize("tiny,full", [("tiny-sd15", "sd15"), ("tiny-sdxl", "sdxl")])
def test_tiny_names_follow_the_full_size_rules(names, tiny, full):
    fam = FAMILIES.get(tiny)
    small = planned_modules(fam, NetworkSpec("locon"), fam.build_empty("meta"))
    assert set(small) <= set(names[full, True])
    assert {n.split("_")[1] for n in small} == {n.split("_")[1] for n in names[full, True]}


def test_cli_prints_names(cli):
    code, out = cli("lora", "keys", "--family", "sdxl")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert len(lines) == 72 + 192 + 722 and "lora_unet_input_blocks_4_1_proj_in" in lines
    code, out = cli("lora", "keys", "--family", "sd15", "--algo", "locon", "--no-te", "--count")
    assert code == 0 and out.split() == ["unet", "278"]
    code, out = cli("lora", "keys", "--family", "sd15", "--algo", "loha", "--conv-dim", "4", "--no-te")
    assert len(out.split()) == 278


def test_cli_tensors_show_keys_and_shapes(cli):
    code, out = cli("lora", "keys", "--family", "sd15", "--algo", "loha", "--no-te", "--tensors", "--dim", "8")
    assert code == 0, out
    assert "lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a\t[320, 8]" in out
    assert "lora_unet_down_blocks_0_attentions_0_proj_in.alpha\t[]" in out


def test_cli_unknown_family(cli):
    code, out = cli("lora", "keys", "--family", "sd3")
    assert code != 0 and "unknown model family 'sd3'" in out
