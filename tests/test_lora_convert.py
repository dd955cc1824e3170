"""Loader rules (what ComfyUI, A1111/Forge and diffusers compute for a module) against LyCORIS, and
`kiln lora convert` writing files each target applies exactly."""

from __future__ import annotations

import json

import pytest
import torch
from lycoris.modules.locon import LoConModule
from test_lora_model import NAME, _lycoris, _state
from test_merge_fixtures import components, save_checkpoint, to_checkpoint
from torch import nn

from lorakiln.formats.loaders import LOADERS, a1111_dora, comfyui_dora, lycoris_dora, module_verdict
from lorakiln.formats.lora_file import read_lora, read_metadata, write_lora
from lorakiln.formats.lora_model import LoraModel, apply_dora, delta_weight, parse_lora
from lorakiln.merge.compat import loader_report
from lorakiln.merge.files import checkpoint_lookup
from lorakiln.merge.svd import rel_error


def _dora_module(layer, wd_on_out: bool):
    m = _lycoris(LoConModule, layer, weight_decompose=True, wd_on_out=wd_on_out)
    with torch.no_grad():
        m.dora_scale.mul_(1.0 + 0.2 * torch.rand_like(m.dora_scale))
    return m, parse_lora(_state(m)).modules[NAME]


@pytest.mark.parametrize("layer", [nn.Linear(16, 24), nn.Conv2d(8, 12, 3)])
def test_reference_rule_is_lycoris(layer):
    for wd_on_out in (True, False):
        m, mod = _dora_module(layer, wd_on_out)
        want = m.get_merged_weight(multiplier=1)[0]
        got = lycoris_dora(layer.weight.detach(), delta_weight(mod), mod.dora_scale)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [nn.Linear(16, 24), nn.Conv2d(8, 12, 3)])
def test_output_axis_dora_is_wrong_in_comfyui_a1111_and_diffusers(layer):
    """LyCORIS ≥ 3.2's default magnitude [out, 1]: ComfyUI/Forge divide by ‖W‖, A1111 broadcasts
    it against a column norm, diffusers drops it — none gives LyCORIS' weight."""
    _, mod = _dora_module(layer, wd_on_out=True)
    w, d = layer.weight.detach(), delta_weight(mod)
    want = apply_dora(w, d, mod.dora_scale)
    assert rel_error(comfyui_dora(w, d, mod.dora_scale) - w, want - w) > 0.01
    assert rel_error(a1111_dora(w, d, mod.dora_scale) - w, want - w) > 0.01
    for name in ("comfyui", "forge", "a1111", "diffusers"):
        v = module_verdict(LOADERS.get(name), mod, d, w)
        assert not v.exact and v.error > 0.01, name


def test_input_axis_dora_is_exact_in_comfyui_and_a1111():
    layer = nn.Linear(16, 24)
    _, mod = _dora_module(layer, wd_on_out=False)
    d = delta_weight(mod)
    for name in ("comfyui", "forge", "a1111"):
        assert module_verdict(LOADERS.get(name), mod, d, layer.weight.detach()).exact, name
    assert not module_verdict(LOADERS.get("diffusers"), mod, d, layer.weight.detach()).exact


def test_a_1d_magnitude_fails_in_comfyui_on_a_non_square_layer():
    layer = nn.Linear(16, 24)
    _, mod = _dora_module(layer, wd_on_out=True)
    mod.dora_scale = mod.dora_scale.reshape(24)  # PEFT / diffusers' kohya export stores it 1-d
    v = module_verdict(LOADERS.get("comfyui"), mod, delta_weight(mod), layer.weight.detach())
    assert not v.exact and "fails" in v.reason


def test_diffusers_refuses_loha_lokr_and_tucker():
    sd = {"a.hada_w1_a": torch.randn(4, 2), "a.hada_w1_b": torch.randn(2, 3), "a.hada_w2_a": torch.randn(4, 2),
          "a.hada_w2_b": torch.randn(2, 3), "b.lokr_w1": torch.randn(2, 2), "b.lokr_w2": torch.randn(2, 3),
          "c.lora_down.weight": torch.randn(2, 3, 1, 1), "c.lora_mid.weight": torch.randn(2, 2, 3, 3),
          "c.lora_up.weight": torch.randn(4, 2, 1, 1), "d.lora_down.weight": torch.randn(2, 3),
          "d.lora_up.weight": torch.randn(4, 2)}
    rep = loader_report(parse_lora(sd))
    assert rep["comfyui"]["exact"] and rep["a1111"]["exact"]
    assert not rep["diffusers"]["exact"] and rep["diffusers"]["exact_modules"] == 1
    assert any("LoHa" in r for r in rep["diffusers"]["reasons"])


# -- files --------------------------------------------------------------------------------
def _sd15_base(tmp_path):
    comps, targets = components("tiny-sd15")
    return save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15")), targets


def _dora_file(path, targets, base_lookup, n=6):
    """A LyCORIS ≥ 3.2 DoRA file (magnitude per output row) on the first n targets."""
    g = torch.Generator().manual_seed(3)
    sd = {}
    for name in sorted(targets)[:n]:
        w = base_lookup(name)
        out, flat = w.shape[0], w[0].numel()
        sd[f"{name}.lora_down.weight"] = torch.randn(2, *w.shape[1:], generator=g) * 0.3
        sd[f"{name}.lora_up.weight"] = torch.randn(out, 2, *([1] * (w.dim() - 2)), generator=g) * 0.3
        sd[f"{name}.alpha"] = torch.tensor(1.0)
        norm = w.reshape(out, -1).norm(dim=1).reshape(out, *([1] * (w.dim() - 1)))
        sd[f"{name}.dora_scale"] = norm * (1 + 0.1 * torch.randn(norm.shape, generator=g))
        assert flat
    write_lora(path, sd, {"ss_base_model_version": "sd_v1", "ss_network_module": "lycoris.kohya",
                          "ss_network_args": json.dumps({"algo": "lora", "dora_wd": "True"}),
                          "ss_output_name": "kafka", "modelspec.trigger_phrase": "kafka_hsr"})
    return path


def _exact_change(model: LoraModel, name: str, lookup) -> torch.Tensor:
    m, w = model.modules[name], lookup(name)
    return apply_dora(w, delta_weight(m, tuple(w.shape)), m.dora_scale) - w


def test_convert_dora_for_comfyui_applies_exactly(tmp_path, cli):
    base, targets = _sd15_base(tmp_path)
    lookup = checkpoint_lookup(base)
    src = _dora_file(tmp_path / "dora.safetensors", targets, lookup)
    model = parse_lora(read_lora(src)[0])
    comfy = LOADERS.get("comfyui")
    before = [module_verdict(comfy, m, delta_weight(m, tuple(lookup(n).shape)), lookup(n))
              for n, m in model.modules.items()]
    assert not any(v.exact for v in before)  # 0 of 6 modules right in ComfyUI before conversion

    code, text = cli("lora", "convert", src, tmp_path / "no-base.safetensors", "--target", "comfyui")
    assert code == 1 and "--base" in text and "dora.safetensors" in text

    out = tmp_path / "comfy.safetensors"
    code, text = cli("lora", "convert", src, tmp_path / "fit.safetensors", "--target", "comfyui", "--base", base,
                     "--json")
    assert code == 0, text
    fit = json.loads(text)  # default: the exact rank where it fits; DoRA changes are full rank, so cut
    assert 0 < fit["error_overall"] < 0.5 and any("--rank N" in n for n in fit["notes"])
    code, text = cli("lora", "convert", src, out, "--target", "comfyui", "--base", base, "--dtype", "fp32",
                     "--rank", "4096", "--json")
    assert code == 0, text
    rep = json.loads(text)
    assert rep["modules_rewritten"] == 6 and rep["verified"] is True and rep["error_overall"] < 1e-5
    converted = parse_lora(read_lora(out)[0])
    assert converted.algos() == {"lora"} and not converted.has_dora()
    for name, m in converted.modules.items():
        w = lookup(name)
        got = delta_weight(m, tuple(w.shape))  # a plain LoRA: every loader adds ΔW
        assert rel_error(got, _exact_change(model, name, lookup)) < 1e-5, name
    meta = read_metadata(out)
    assert meta["ss_network_module"] == "networks.lora" and "dora_wd" not in meta["ss_network_args"]
    assert meta["modelspec.trigger_phrase"] == "kafka_hsr" and "ComfyUI" in meta["ss_training_comment"]
    assert meta["modelspec.title"] and meta["modelspec.date"].endswith("+00:00")


def test_convert_with_a_rank_reports_the_error(tmp_path, cli):
    base, targets = _sd15_base(tmp_path)
    src = _dora_file(tmp_path / "dora.safetensors", targets, checkpoint_lookup(base))
    code, text = cli("lora", "convert", src, tmp_path / "r1.safetensors", "--target", "a1111", "--base", base,
                     "--rank", "1", "--json")
    assert code == 0, text
    rep = json.loads(text)
    assert rep["rank_max"] == 1 and 0 < rep["error_overall"] < 1 and rep["error_max"] >= rep["error_overall"] * 0.5
    assert all(m["rank"] == 1 and m["error"] > 0 for m in rep["per_module"])


def test_convert_loha_for_diffusers_loads_in_diffusers(tmp_path, cli):
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers

    g = torch.Generator().manual_seed(0)
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    sd = {f"{name}.hada_w1_a": torch.randn(32, 2, generator=g), f"{name}.hada_w1_b": torch.randn(2, 32, generator=g),
          f"{name}.hada_w2_a": torch.randn(32, 2, generator=g), f"{name}.hada_w2_b": torch.randn(2, 32, generator=g),
          f"{name}.alpha": torch.tensor(1.0)}
    src = tmp_path / "loha.safetensors"
    write_lora(src, sd, {"ss_base_model_version": "sd_v1"})
    with pytest.raises(ValueError):
        _convert_non_diffusers_lora_to_diffusers(read_lora(src)[0])
    out = tmp_path / "plain.safetensors"
    code, text = cli("lora", "convert", src, out, "--target", "diffusers", "--dtype", "fp32")
    assert code == 0, text
    unet, _ = _convert_non_diffusers_lora_to_diffusers(read_lora(out)[0])[:2]
    assert unet  # every key renamed: diffusers loads it
    want = delta_weight(parse_lora(sd).modules[name])
    got = delta_weight(parse_lora(read_lora(out)[0]).modules[name])
    assert rel_error(got, want) < 1e-5  # rank 4 = exact rank of the Hadamard product of two rank-2 factors


def test_convert_keeps_modules_the_target_applies_exactly(tmp_path, cli):
    g = torch.Generator().manual_seed(0)
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    sd = {f"{name}.hada_w1_a": torch.randn(8, 2, generator=g), f"{name}.hada_w1_b": torch.randn(2, 8, generator=g),
          f"{name}.hada_w2_a": torch.randn(8, 2, generator=g), f"{name}.hada_w2_b": torch.randn(2, 8, generator=g)}
    src = tmp_path / "loha.safetensors"
    write_lora(src, sd, {"ss_base_model_version": "sd_v1"})
    code, text = cli("lora", "convert", src, tmp_path / "c.safetensors", "--target", "comfyui", "--json")
    assert code == 0, text
    assert json.loads(text)["modules_kept"] == 1
    assert torch.equal(read_lora(tmp_path / "c.safetensors")[0][f"{name}.hada_w1_a"], sd[f"{name}.hada_w1_a"])


def test_info_and_card_say_which_loaders_apply_the_file(tmp_path, cli):
    base, targets = _sd15_base(tmp_path)
    src = _dora_file(tmp_path / "dora.safetensors", targets, checkpoint_lookup(base))
    code, text = cli("info", src)
    assert code == 0, text
    assert "ComfyUI: not exact" in text and "diffusers: not exact" in text and "base weight W" in text
    d = json.loads(cli("info", src, "--json")[1])
    assert {k: v["exact"] for k, v in d["loaders"].items()} == {"comfyui": False, "a1111": False, "forge": False,
                                                                "diffusers": False}
    assert "kiln lora convert" in d["loaders_line"]
    code, text = cli("card", "--lora", src, "-o", tmp_path / "card", cwd=tmp_path)
    assert code == 0, text
    card = (tmp_path / "card" / "card.md").read_text()
    assert "- Loaders: Applies exactly in none of the checked loaders" in card and "ComfyUI (" in card
    plain = tmp_path / "plain.safetensors"
    cli("lora", "convert", src, plain, "--target", "diffusers", "--base", base)
    d = json.loads(cli("info", plain, "--json")[1])
    assert all(v["exact"] for v in d["loaders"].values())
    assert d["loaders_line"] == "Applies exactly in ComfyUI, A1111, Forge, diffusers."


def test_a_full_module_with_a_bias_change_says_the_bias_is_lost(tmp_path, cli):
    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    src = tmp_path / "full.safetensors"
    write_lora(src, {f"{name}.diff": torch.randn(8, 8), f"{name}.diff_b": torch.randn(8)},
               {"ss_base_model_version": "sd_v1"})
    code, text = cli("lora", "convert", src, tmp_path / "d.safetensors", "--target", "diffusers", "--json")
    assert code == 0, text
    rep = json.loads(text)
    assert rep["modules_rewritten"] == 1 and any("diff_b" in n for n in rep["notes"])
