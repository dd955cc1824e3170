"""lora_model: every algorithm's ΔW equals what LyCORIS' own modules compute."""

from __future__ import annotations

import pytest
import torch
from lycoris.modules.locon import LoConModule
from lycoris.modules.loha import LohaModule
from lycoris.modules.lokr import LokrModule
from torch import nn

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import (
    apply_dora,
    conv_shape,
    delta_weight,
    dora_axis,
    parse_lora,
)

NAME = "lora_unet_down_blocks_0_resnets_0_conv1"  # a 3x3 conv in SD1.5; conv_shape knows it
CASES = [
    ("lora", LoConModule, nn.Linear(16, 24), {}),
    ("lora", LoConModule, nn.Conv2d(8, 12, 3), {}),
    ("lora", LoConModule, nn.Conv2d(8, 12, 3), {"use_tucker": True}),
    ("lora", LoConModule, nn.Conv2d(8, 12, 1), {}),
    ("loha", LohaModule, nn.Linear(16, 24), {}),
    ("loha", LohaModule, nn.Conv2d(8, 12, 3), {}),
    ("loha", LohaModule, nn.Conv2d(8, 12, 3), {"use_tucker": True}),
    ("lokr", LokrModule, nn.Linear(16, 24), {"factor": 4}),
    ("lokr", LokrModule, nn.Linear(64, 96), {"factor": 4, "decompose_both": True}),
    ("lokr", LokrModule, nn.Conv2d(8, 12, 3), {"factor": 2}),
    ("lokr", LokrModule, nn.Conv2d(32, 48, 3), {"factor": 4, "decompose_both": True}),
    ("lokr", LokrModule, nn.Conv2d(32, 48, 3), {"factor": 4, "use_tucker": True}),
    ("lokr", LokrModule, nn.Linear(16, 24), {"factor": 4, "full_matrix": True}),
]


def _lycoris(cls, layer, rank=2, alpha=3.0, seed=0, **kw):
    torch.manual_seed(seed)
    m = cls(NAME, layer, lora_dim=rank, alpha=alpha, **kw)
    with torch.no_grad():
        for p in m.parameters():
            if p is not layer.weight and p is not getattr(layer, "bias", None):
                p.normal_()
    return m


def _input(layer) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, layer.in_features, generator=g) if isinstance(layer, nn.Linear) else \
        torch.randn(2, layer.in_channels, 6, 6, generator=g)


@torch.no_grad()
def _applied(layer, delta, x) -> torch.Tensor:
    """The layer's op with ΔW as its weight and no bias."""
    if isinstance(layer, nn.Linear):
        return torch.nn.functional.linear(x, delta)
    return torch.nn.functional.conv2d(x, delta, stride=layer.stride, padding=layer.padding)


def _state(m) -> dict[str, torch.Tensor]:
    return {f"{m.lora_name}.{k}": v.detach().clone() for k, v in m.custom_state_dict().items()}


@pytest.mark.parametrize("algo, cls, layer, kw", CASES)
def test_delta_matches_lycoris(algo, cls, layer, kw):
    m = _lycoris(cls, layer, **kw)
    model = parse_lora(_state(m))
    mod = model.modules[NAME]
    assert mod.algo == algo and not model.ignored
    got = delta_weight(mod, conv_shape(mod.name, mod.shape))
    assert got.shape == layer.weight.shape
    # the oracle is LyCORIS' forward pass (what inference applies), not get_diff_weight:
    # lycoris-lora 4.1.3 LoHa/LoKr get_diff_weight multiplies the scale in twice
    torch.testing.assert_close(_applied(layer, got, x := _input(layer)), m(x) - layer(x), rtol=1e-4, atol=1e-4)


def test_rank_alpha_scale():
    m = parse_lora(_state(_lycoris(LoConModule, nn.Linear(16, 24), rank=4, alpha=2.0))).modules[NAME]
    assert (m.rank, m.alpha, m.scale) == (4, 2.0, 0.5)
    full = parse_lora(_state(_lycoris(LokrModule, nn.Linear(16, 24), factor=4, full_matrix=True)))
    assert full.modules[NAME].scale == 1.0  # LoKr without factored half: no alpha
    kr = parse_lora(_state(_lycoris(LokrModule, nn.Linear(64, 96), factor=4, decompose_both=True, rank=2, alpha=3.0)))
    assert kr.modules[NAME].scale == 1.5


def test_missing_alpha_means_scale_one():
    sd = {"x.lora_down.weight": torch.randn(2, 5), "x.lora_up.weight": torch.randn(3, 2)}
    m = parse_lora(sd).modules["x"]
    torch.testing.assert_close(delta_weight(m), sd["x.lora_up.weight"] @ sd["x.lora_down.weight"])


@pytest.mark.parametrize("layer", [nn.Linear(16, 24), nn.Conv2d(8, 12, 3)])
@pytest.mark.parametrize("wd_on_out", [True, False])
def test_dora_matches_lycoris_on_both_axes(layer, wd_on_out):
    m = _lycoris(LoConModule, layer, weight_decompose=True, wd_on_out=wd_on_out)
    with torch.no_grad():
        m.dora_scale.mul_(1.3)
    mod = parse_lora(_state(m)).modules[NAME]
    assert dora_axis(mod.dora_scale, tuple(layer.weight.shape)) == ("out" if wd_on_out else "in")
    x = _input(layer)
    with torch.no_grad():
        want_out = m(x)
    want = m.get_merged_weight(multiplier=1)[0]
    got = apply_dora(layer.weight.detach(), delta_weight(mod), mod.dora_scale)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    bias = layer.bias.detach().reshape(1, -1, *([1] * (x.dim() - 2)))
    torch.testing.assert_close(_applied(layer, got, x) + bias, want_out, rtol=1e-4, atol=1e-4)


def test_dora_axis_matters_on_a_square_layer():
    layer = nn.Linear(16, 16)
    m = _lycoris(LoConModule, layer, weight_decompose=True, wd_on_out=True)
    mod = parse_lora(_state(m)).modules[NAME]
    want = m.get_merged_weight(multiplier=1)[0]
    right = apply_dora(layer.weight.detach(), delta_weight(mod), mod.dora_scale.reshape(16))  # 1-d: PEFT's output axis
    torch.testing.assert_close(right, want, rtol=1e-4, atol=1e-5)
    wrong = apply_dora(layer.weight.detach(), delta_weight(mod), mod.dora_scale.reshape(1, 16), axis="in")
    assert not torch.allclose(wrong, want, atol=1e-3)


def test_unknown_keys_are_listed_not_merged():
    sd = {"x.lora_down.weight": torch.randn(2, 5), "x.lora_up.weight": torch.randn(3, 2),
          "x.weird": torch.zeros(1), "bundle_emb.kafka.string_to_param.*": torch.zeros(2)}
    model = parse_lora(sd)
    assert set(model.modules) == {"x"}
    assert model.ignored == ["bundle_emb.kafka.string_to_param.*", "x.weird"]


def test_malformed_module_is_named():
    sd = {"x.lora_down.weight": torch.randn(2, 5), "x.lora_up.weight": torch.randn(3, 4)}
    with pytest.raises(KilnError, match="module x .*rank mismatch"):
        parse_lora(sd, "a.safetensors")
    with pytest.raises(KilnError, match="module y .*incomplete"):
        parse_lora({"y.hada_w1_a": torch.randn(3, 2)})


def test_conv_shape_rules():
    assert conv_shape("lora_unet_down_blocks_0_resnets_0_conv1", (12, 72)) == (12, 8, 3, 3)
    assert conv_shape("lora_unet_input_blocks_3_0_op", (12, 72)) == (12, 8, 3, 3)
    assert conv_shape("lora_unet_down_blocks_0_attentions_0_proj_in", (12, 8)) == (12, 8, 1, 1)
    assert conv_shape("lora_unet_input_blocks_4_1_proj_in", (12, 8)) == (12, 8)  # SDXL: linear
    assert conv_shape("lora_te_text_model_encoder_layers_0_mlp_fc1", (12, 72)) == (12, 72)
