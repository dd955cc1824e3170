"""Applying LoRAs for sampling: W + wΔW on exactly the targeted weights, stacking, TE/U-Net split,
exact restore (even on error), and agreement with the adapter's own forward (bypass = merged)."""

import pytest
import torch

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.apply_lora import LoraPatcher, Use, load_lora
from lorakiln.formats.lora_model import delta_weight
from lorakiln.train.families import FAMILIES
from lorakiln.train.network import NetworkSpec, create_network


@pytest.fixture(scope="module")
def tiny():
    fam = FAMILIES.get("tiny-sd15")
    return fam, fam.load("tiny-sd15")


def _lora_file(path, fam, comps, algo="lora", seed=0, scale=0.1, dora=False):
    net = create_network(fam, comps, NetworkSpec(algo=algo, dim=4, alpha=2, dora=dora), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for _, p in net.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)  # zero-initialised halves get values too
    net.save(path, {**net.metadata(fam, comps), "ss_output_name": f"kiln{seed}"}, dtype=torch.float32)
    return net


def _snapshot(comps):
    mods = [comps.unet, *comps.text_encoders]
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in mods]


def _same(a, b):
    return all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def test_patch_adds_weighted_delta_and_restores_bit_exactly(tmp_path, tiny):
    fam, comps = tiny
    _lora_file(tmp_path / "a.safetensors", fam, comps)
    lora = load_lora(tmp_path / "a.safetensors")
    assert lora.alias == "kiln0" and len(lora.short_hash) == 12
    targets = fam.lora_targets(comps, conv=True, text_encoder=True)
    name = next(n for n in lora.model.modules if n.startswith("lora_unet") and "to_q" in n)
    te_name = next(n for n in lora.model.modules if n.startswith("lora_te"))
    before = _snapshot(comps)
    w0, te0 = targets[name].weight.clone(), targets[te_name].weight.clone()
    with LoraPatcher(targets).applied([Use(lora, te=0.0, unet=0.7)]) as report:
        expected = w0 + 0.7 * delta_weight(lora.model.modules[name], tuple(w0.shape))
        assert torch.allclose(targets[name].weight, expected, atol=1e-6)
        assert torch.equal(targets[te_name].weight, te0)  # te weight 0: text encoder untouched
        assert report.modules > 0 and report.unmatched == {}
    assert _same(before, _snapshot(comps))


def test_stacking_sums_deltas_and_errors_still_restore(tmp_path, tiny):
    fam, comps = tiny
    _lora_file(tmp_path / "a.safetensors", fam, comps, seed=1)
    _lora_file(tmp_path / "b.safetensors", fam, comps, algo="loha", seed=2)
    a, b = load_lora(tmp_path / "a.safetensors"), load_lora(tmp_path / "b.safetensors")
    targets = fam.lora_targets(comps, conv=True, text_encoder=True)
    name = next(n for n in a.model.modules if n in b.model.modules and "to_k" in n)
    w0 = targets[name].weight.clone()
    before = _snapshot(comps)
    with pytest.raises(RuntimeError, match="boom"):
        with LoraPatcher(targets).applied([Use(a, 0.5, 0.5), Use(b, -1.0, -1.0)]):
            shape = tuple(w0.shape)
            expected = w0 + 0.5 * delta_weight(a.model.modules[name], shape) - delta_weight(b.model.modules[name],
                                                                                            shape)
            assert torch.allclose(targets[name].weight, expected, atol=1e-6)
            raise RuntimeError("boom")
    assert _same(before, _snapshot(comps))


@pytest.mark.parametrize("algo,dora", [("lora", False), ("loha", False), ("lokr", False), ("lora", True)])
def test_patched_model_matches_the_adapter_forward(tmp_path, tiny, algo, dora):
    """The network's own forward (LoRA bypass; LyCORIS' rebuilt weight for LoHa/LoKr/DoRA) equals the
    merged weight the sampler uses."""
    fam, comps = tiny
    net = _lora_file(tmp_path / "a.safetensors", fam, comps, algo=algo, seed=3, dora=dora)
    lora = load_lora(tmp_path / "a.safetensors")
    torch.manual_seed(0)
    lat, t = torch.randn(1, 4, 8, 8), torch.tensor([500])
    with torch.no_grad():
        cond = fam.encode_prompts(comps, ["1girl, solo"])
        plain = fam.predict(comps, lat, t, cond)
        net.apply_to()
        try:
            bypass = fam.predict(comps, lat, t, fam.encode_prompts(comps, ["1girl, solo"]))
        finally:
            net.restore()
        with LoraPatcher(fam.lora_targets(comps, conv=True, text_encoder=True)).applied([Use(lora)]):
            merged = fam.predict(comps, lat, t, fam.encode_prompts(comps, ["1girl, solo"]))
    assert not torch.allclose(plain, merged, atol=1e-4)
    assert torch.allclose(bypass, merged, atol=1e-4)


def test_lora_for_another_model_is_refused(tmp_path, tiny):
    fam, comps = tiny
    from lorakiln.formats.lora_file import write_lora

    write_lora(tmp_path / "x.safetensors", {"lora_unet_input_blocks_4_1_proj_in.lora_down.weight": torch.ones(2, 8),
                                            "lora_unet_input_blocks_4_1_proj_in.lora_up.weight": torch.ones(8, 2)}, {})
    lora = load_lora(tmp_path / "x.safetensors")
    with pytest.raises(KilnError, match="another base model"):
        with LoraPatcher(fam.lora_targets(comps, conv=True, text_encoder=True)).applied([Use(lora)]):
            pass
