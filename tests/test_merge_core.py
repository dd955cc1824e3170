"""Merge cores on tiny tensors: exact sums, kohya's add mode shown wrong, concat, SVD paths."""

from __future__ import annotations

import math

import pytest
import torch

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_model import delta_weight, parse_lora
from lorakiln.merge.arch import check_same_arch
from lorakiln.merge.combine import RankPolicy, merge_svd
from lorakiln.merge.concat import merge_concat
from lorakiln.merge.delta import DoraNeedsBase, Source
from lorakiln.merge.svd import rel_error, svd_dense, svd_factored

LIN = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
CONV = "lora_unet_down_blocks_0_resnets_0_conv1"


def lora_sd(seed: int, rank: int, alpha: float, lin=(32, 24), conv=(12, 8), mid=False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = {f"{LIN}.lora_down.weight": r(rank, lin[1]), f"{LIN}.lora_up.weight": r(lin[0], rank),
          f"{LIN}.alpha": torch.tensor(alpha)}
    if conv:
        if mid:
            sd[f"{CONV}.lora_down.weight"] = r(rank, conv[1], 1, 1)
            sd[f"{CONV}.lora_mid.weight"] = r(rank, rank, 3, 3)
        else:
            sd[f"{CONV}.lora_down.weight"] = r(rank, conv[1], 3, 3)
        sd[f"{CONV}.lora_up.weight"] = r(conv[0], rank, 1, 1)
        sd[f"{CONV}.alpha"] = torch.tensor(alpha)
    return sd


def src(name, sd, w) -> Source:
    return Source(name, parse_lora(sd, name), w)


def by_hand(sd: dict, name: str) -> torch.Tensor:
    """alpha/r · up @ down, written out independently of lora_model."""
    up, down, alpha = sd[f"{name}.lora_up.weight"], sd[f"{name}.lora_down.weight"], float(sd[f"{name}.alpha"])
    r = down.shape[0]
    out = (up.reshape(up.shape[0], r) @ down.reshape(r, -1)) * (alpha / r)
    return out.reshape(up.shape[0], *down.shape[1:])


def result_delta(tensors, name, shape):
    return delta_weight(parse_lora(tensors).modules[name], shape)


def test_full_rank_merge_is_the_exact_weighted_sum():
    a, b = lora_sd(1, 4, 2.0), lora_sd(2, 4, 4.0)
    t, reps = merge_svd([src("a", a, 0.7), src("b", b, 0.4)], RankPolicy(rank=8), torch.float32)
    for name, shape in ((LIN, (32, 24)), (CONV, (12, 8, 3, 3))):
        want = 0.7 * by_hand(a, name) + 0.4 * by_hand(b, name)
        got = result_delta(t, name, shape)
        assert rel_error(got, want) < 1e-5
    assert max(r.error for r in reps) < 1e-5 and {r.rank for r in reps} == {8}


def test_kohya_add_mode_is_wrong_on_the_same_inputs():
    a, b = lora_sd(1, 4, 2.0, conv=None), lora_sd(2, 4, 4.0, conv=None)
    want = 0.7 * by_hand(a, LIN) + 0.4 * by_hand(b, LIN)
    # kohya merge_lora.py without --concat: scale = sqrt(alpha_i/base_alpha)·ratio, up·|scale|, down·scale, summed
    base_alpha = 2.0
    ups = sum(sd[f"{LIN}.lora_up.weight"] * abs(math.sqrt(float(sd[f"{LIN}.alpha"]) / base_alpha) * w)
              for sd, w in ((a, 0.7), (b, 0.4)))
    downs = sum(sd[f"{LIN}.lora_down.weight"] * (math.sqrt(float(sd[f"{LIN}.alpha"]) / base_alpha) * w)
                for sd, w in ((a, 0.7), (b, 0.4)))
    theirs = rel_error(ups @ downs * (base_alpha / 4), want)
    t, _ = merge_svd([src("a", a, 0.7), src("b", b, 0.4)], RankPolicy(), torch.float32)
    ours = rel_error(result_delta(t, LIN, (32, 24)), want)
    assert ours < 1e-5 and theirs > 0.3


def test_weight_zero_adds_nothing_and_weight_one_is_the_lora():
    a, b = lora_sd(1, 4, 2.0), lora_sd(2, 4, 4.0)
    t, _ = merge_svd([src("a", a, 0.0), src("b", b, 1.0)], RankPolicy(), torch.float32)
    for name, shape in ((LIN, (32, 24)), (CONV, (12, 8, 3, 3))):
        torch.testing.assert_close(result_delta(t, name, shape), by_hand(b, name), rtol=1e-4, atol=1e-5)
    with pytest.raises(KilnError, match="weight 0"):
        merge_svd([src("a", a, 0.0)], RankPolicy(), torch.float32)


def test_modules_missing_from_an_input_count_as_zero():
    a, b = lora_sd(1, 4, 2.0), lora_sd(2, 4, 4.0, conv=None)
    t, _ = merge_svd([src("a", a, 0.5), src("b", b, 0.5)], RankPolicy(), torch.float32)
    assert rel_error(result_delta(t, CONV, (12, 8, 3, 3)), 0.5 * by_hand(a, CONV)) < 1e-5


@pytest.mark.parametrize("mid", [False, True])
def test_concat_is_exact_with_negative_weights_and_tucker(mid):
    a, b = lora_sd(1, 4, 2.0, mid=mid), lora_sd(2, 3, 1.0, mid=mid)
    t, reps = merge_concat([src("a", a, 0.7), src("b", b, -0.4)], torch.float32)
    for name, shape in ((LIN, (32, 24)), (CONV, (12, 8, 3, 3))):
        want = 0.7 * by_hand_any(a, name, shape) - 0.4 * by_hand_any(b, name, shape)
        assert rel_error(result_delta(t, name, shape), want) < 1e-5
    assert t[f"{LIN}.lora_down.weight"].shape[0] == 7 and max(r.error for r in reps) < 1e-5


def by_hand_any(sd, name, shape):
    if f"{name}.lora_mid.weight" in sd:
        up = sd[f"{name}.lora_up.weight"].flatten(1)
        down = sd[f"{name}.lora_down.weight"].flatten(1)
        mid = sd[f"{name}.lora_mid.weight"]
        r = down.shape[0]
        w = torch.zeros(shape)
        for i in range(r):
            for j in range(r):
                w += up[:, i][:, None, None, None] * down[j][None, :, None, None] * mid[i, j][None, None]
        return w * float(sd[f"{name}.alpha"]) / r
    return by_hand(sd, name)


def test_concat_refuses_non_lora_parts():
    a = lora_sd(1, 4, 2.0, conv=None)
    loha = {f"{LIN}.hada_w1_a": torch.randn(32, 2), f"{LIN}.hada_w1_b": torch.randn(2, 24),
            f"{LIN}.hada_w2_a": torch.randn(32, 2), f"{LIN}.hada_w2_b": torch.randn(2, 24)}
    with pytest.raises(KilnError, match="loha; --concat"):
        merge_concat([src("a", a, 1), src("h.safetensors", loha, 1)], torch.float32)


def test_loha_lokr_and_dora_inputs_merge_through_the_dense_path():
    g = torch.Generator().manual_seed(3)
    loha = {f"{LIN}.hada_w1_a": torch.randn(32, 2, generator=g), f"{LIN}.hada_w1_b": torch.randn(2, 24, generator=g),
            f"{LIN}.hada_w2_a": torch.randn(32, 2, generator=g), f"{LIN}.hada_w2_b": torch.randn(2, 24, generator=g),
            f"{LIN}.alpha": torch.tensor(1.0)}
    lokr = {f"{LIN}.lokr_w1": torch.randn(4, 4, generator=g), f"{LIN}.lokr_w2": torch.randn(8, 6, generator=g)}
    dora = lora_sd(4, 4, 4.0, conv=None)
    dora[f"{LIN}.dora_scale"] = torch.rand(32, 1, generator=g) + 0.5
    base_w = torch.randn(32, 24, generator=g)
    sources = [src("h", loha, 0.5), src("k", lokr, 0.3), src("d", dora, 0.2)]
    with pytest.raises(DoraNeedsBase, match="--base"):
        merge_svd(sources, RankPolicy(), torch.float32)
    base = lambda name: base_w if name == LIN else None  # noqa: E731
    t, reps = merge_svd(sources, RankPolicy(), torch.float32, base=base)
    w_d = base_w + by_hand(dora, LIN)
    dora_delta = dora[f"{LIN}.dora_scale"] * w_d / w_d.norm(dim=1, keepdim=True) - base_w
    want = 0.5 * (loha[f"{LIN}.hada_w1_a"] @ loha[f"{LIN}.hada_w1_b"]) * (loha[f"{LIN}.hada_w2_a"] @ loha[f"{LIN}.hada_w2_b"]) / 2 \
        + 0.3 * torch.kron(lokr[f"{LIN}.lokr_w1"], lokr[f"{LIN}.lokr_w2"]) + 0.2 * dora_delta
    assert rel_error(result_delta(t, LIN, (32, 24)), want) < 1e-5
    assert reps[0].rank == 24  # full rank kept: no rank given


def test_factored_spectrum_equals_dense():
    g = torch.Generator().manual_seed(5)
    up, down = torch.randn(40, 6, generator=g), torch.randn(6, 30, generator=g)
    a, b = svd_factored(up, down), svd_dense(up @ down)
    torch.testing.assert_close(a.S, b.S[:6], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.U @ torch.diag(a.S) @ a.Vh, up @ down, rtol=1e-4, atol=1e-4)


def test_different_architectures_are_refused():
    sd15 = parse_lora({f"{LIN}.lora_down.weight": torch.randn(2, 24), f"{LIN}.lora_up.weight": torch.randn(32, 2)})
    xl_name = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    sdxl = parse_lora({f"{xl_name}.lora_down.weight": torch.randn(2, 24), f"{xl_name}.lora_up.weight": torch.randn(32, 2)})
    with pytest.raises(KilnError, match="different base models"):
        check_same_arch([("a.safetensors", sd15, {}), ("b.safetensors", sdxl, {})])
    with pytest.raises(KilnError, match="different base models"):
        check_same_arch([("a", sd15, {"ss_base_model_version": "sd_v1"}), ("b", parse_lora({}), {"ss_base_model_version": "sdxl_base_v1-0"})])
    wide = parse_lora({f"{LIN}.lora_down.weight": torch.randn(2, 48), f"{LIN}.lora_up.weight": torch.randn(32, 2)})
    with pytest.raises(KilnError, match="different model architectures"):
        merge_svd([Source("a", sd15), Source("b", wide)], RankPolicy(), torch.float32)
