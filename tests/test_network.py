"""LoRA/LoCon/LoHa/LoKr/DoRA networks on the tiny families: identity at init, bypass = merged,
parameter groups, text-encoder stop, dropouts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lorakiln.train.families import FAMILIES
from lorakiln.train.network import ALGOS, NetworkSpec, create_network, merged_weight


SPECS = {
    "lora": NetworkSpec("lora", dim=4, alpha=2),
    "locon": NetworkSpec("locon", dim=4, alpha=2, conv_dim=2, conv_alpha=1),
    "loha": NetworkSpec("loha", dim=4, alpha=2, conv_dim=2),
    "lokr": NetworkSpec("lokr", dim=4, alpha=2, conv_dim=2, args={"factor": 4}),
    "dora": NetworkSpec("lora", dim=4, alpha=2, dora=True),
}


@pytest.fixture(scope="module")
def tiny():
    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    lat = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([50, 600])
    return fam, comps, lat, t


def _out(fam, comps, lat, t):
    with torch.no_grad():
        return fam.predict(comps, lat, t, fam.encode_prompts(comps, ["a cat", "1girl"]))


def _randomise(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.ndim <= 2 and p.shape[-1] == 1 else 0.0))


@pytest.mark.parametrize("kind", list(SPECS))
def test_fresh_network_leaves_the_model_unchanged(tiny, kind):
    fam, comps, lat, t = tiny
    base = _out(fam, comps, lat, t)
    net = create_network(fam, comps, SPECS[kind], seed=0).apply_to()
    try:
        assert torch.allclose(_out(fam, comps, lat, t), base, atol=1e-5)
        assert net.trainable_parameters()
    finally:
        net.restore()
    assert torch.equal(_out(fam, comps, lat, t), base)  # restore gives the base forward back


@pytest.mark.parametrize("kind", list(SPECS))
def test_bypass_forward_equals_merged_weight(tiny, kind):
    """Each adapted module's output equals the base op run with the merged weight (linear and 3x3 conv)."""
    fam, comps, _, _ = tiny
    net = create_network(fam, comps, SPECS[kind], seed=0)
    _randomise(net)
    checked = set()
    with torch.no_grad():
        for name, m in net.lora_modules.items():
            org = m.org_module[0]
            kind_of = "conv3x3" if isinstance(org, nn.Conv2d) and org.kernel_size != (1, 1) else type(org).__name__
            if kind_of in checked:
                continue
            checked.add(kind_of)
            x = torch.randn(2, org.in_channels, 8, 8) if isinstance(org, nn.Conv2d) else torch.randn(3, org.in_features)
            got = m(x)
            merged = merged_weight(m)
            want = (F.conv2d(x, merged, org.bias, org.stride, org.padding) if isinstance(org, nn.Conv2d)
                    else F.linear(x, merged, org.bias))
            assert torch.allclose(got, want, atol=1e-5), name
            assert not torch.allclose(got, org.forward(x), atol=1e-4)  # the adapter does something
    assert "Linear" in checked and ("conv3x3" in checked) == (SPECS[kind].conv_rank() is not None)


@pytest.mark.parametrize("kind", list(SPECS))
def test_whole_model_bypass_equals_merged_model(kind):
    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    lat, t = torch.randn(2, 4, 8, 8), torch.tensor([300, 20])
    net = create_network(fam, comps, SPECS[kind], seed=0)
    _randomise(net)
    net.apply_to()
    bypass = _out(fam, comps, lat, t)
    net.restore()
    net.eval()
    with torch.no_grad():
        merged = {name: merged_weight(m) for name, m in net.lora_modules.items()}
        for name, m in net.lora_modules.items():
            m.org_module[0].weight.copy_(merged[name])
    assert torch.allclose(_out(fam, comps, lat, t), bypass, atol=1e-4)


def test_module_counts_and_conv_dims(tiny):
    fam, comps, _, _ = tiny
    lora = create_network(fam, comps, SPECS["lora"])
    locon = create_network(fam, comps, SPECS["locon"])
    assert len(lora.names("te")) == 12 and len(lora.names("unet")) == 48
    assert len(locon.names("unet")) == 79
    conv = locon.lora_modules["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert conv.lora_dim == 2 and conv.lora_down.weight.shape == (2, 32, 3, 3)
    shortcut = locon.lora_modules["lora_unet_up_blocks_1_resnets_0_conv_shortcut"]
    assert shortcut.lora_dim == 4  # 1x1 convs take the linear rank, as in kohya
    unet_only = create_network(fam, comps, NetworkSpec("lora", dim=4, text_encoder=False))
    assert unet_only.parts() == ["unet"]


def test_param_groups_separate_learning_rates():
    fam = FAMILIES.get("tiny-sdxl")
    comps = fam.load("tiny-sdxl")
    net = create_network(fam, comps, SPECS["lora"])
    groups = net.param_groups(unet_lr=1e-4, text_encoder_lr=[1e-5, 2e-5], learning_rate=3e-4)
    assert [(g["name"], g["lr"]) for g in groups] == [("te1", 1e-5), ("te2", 2e-5), ("unet", 1e-4)]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    groups = net.param_groups(unet_lr=None, text_encoder_lr=0, learning_rate=3e-4)
    assert [(g["name"], g["lr"]) for g in groups] == [("unet", 3e-4)]
    assert not any(p.requires_grad for n in net.names("te1") for p in net.lora_modules[n].parameters())
    groups = net.param_groups(unet_lr=None, text_encoder_lr=None, learning_rate=3e-4)
    assert {g["lr"] for g in groups} == {3e-4} and len(groups) == 3


def test_stop_text_encoder_training_freezes_te_adapters(tiny):
    fam, comps, lat, t = tiny
    net = create_network(fam, comps, SPECS["lora"], seed=0).apply_to()
    try:
        opt = torch.optim.AdamW(net.param_groups(1e-3, 1e-3, 1e-3))
        assert net.stop_text_encoder_training() == ["te"]
        te_before = {k: v.clone() for k, v in net.kohya_state_dict().items() if k.startswith("lora_te")}
        unet_before = {k: v.clone() for k, v in net.kohya_state_dict().items() if k.startswith("lora_unet")}
        cond = fam.encode_prompts(comps, ["a cat", "1girl"])
        F.mse_loss(fam.predict(comps, lat, t, cond), torch.zeros_like(lat)).backward()
        opt.step()
        after = net.kohya_state_dict()
        assert all(torch.equal(v, after[k]) for k, v in te_before.items())
        assert any(not torch.equal(v, after[k]) for k, v in unet_before.items())
    finally:
        net.restore()


def test_dropouts_act_in_training_only(tiny):
    fam, comps, lat, t = tiny
    spec = NetworkSpec("lora", dim=4, alpha=4, rank_dropout=0.5, module_dropout=0.3, dropout=0.2, text_encoder=False)
    net = create_network(fam, comps, spec, seed=0)
    _randomise(net)
    net.apply_to()
    try:
        cond = fam.encode_prompts(comps, ["a cat", "1girl"])
        net.train()
        torch.manual_seed(0)
        a = fam.predict(comps, lat, t, cond)
        b = fam.predict(comps, lat, t, cond)
        assert not torch.allclose(a, b)
        net.eval()
        assert torch.equal(fam.predict(comps, lat, t, cond), fam.predict(comps, lat, t, cond))
    finally:
        net.restore()


def test_multiplier_scales_the_update(tiny):
    fam, comps, lat, t = tiny
    base = _out(fam, comps, lat, t)
    net = create_network(fam, comps, SPECS["lora"], seed=0)
    _randomise(net)
    net.apply_to()
    try:
        full = _out(fam, comps, lat, t)
        net.set_multiplier(0.0)
        assert torch.allclose(_out(fam, comps, lat, t), base, atol=1e-6)
        assert not torch.allclose(full, base, atol=1e-4)
    finally:
        net.restore()


def test_spec_from_train_config():
    from lorakiln.config.train import NetworkConfig

    cfg = NetworkConfig(algo="lokr", network_dim=8, network_alpha=4, conv_dim=4, dora_wd=True,
                        network_train_unet_only=True, rank_dropout=0.1, network_args={"factor": 8})
    spec = NetworkSpec.from_config(cfg)
    assert (spec.algo, spec.dim, spec.alpha, spec.conv_rank(), spec.dora, spec.text_encoder) == \
        ("lokr", 8, 4.0, (4, 1.0), True, False)  # conv_alpha 1 when unset, as kohya
    assert spec.network_args() == {"algo": "lokr", "conv_dim": "4", "conv_alpha": "1.0", "dora_wd": "True",
                                   "wd_on_output": "True", "rank_dropout": "0.1", "factor": "8"}
    assert NetworkSpec("locon", dim=8, alpha=4).conv_rank() == (8, 4)
    kohya_style = NetworkSpec.from_config(NetworkConfig(algo="lora", dora_wd=True,
                                                        network_args={"wd_on_output": "False", "use_tucker": "False"}))
    assert kohya_style.dora_on_output is False
    assert NetworkSpec("lora", dim=8).conv_rank() is None


def test_kohya_string_args_are_coerced(tiny):
    fam, comps, _, _ = tiny
    net = create_network(fam, comps, NetworkSpec("lokr", dim=4, conv_dim=2, args={"factor": "4", "use_tucker": "False"}))
    conv = net.lora_modules["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert conv.tucker is False and not hasattr(conv, "lokr_t2")


def test_algo_registry():
    assert set(ALGOS.names()) == {"lora", "locon", "loha", "lokr"}
    assert ALGOS.get("lora").network_module == "networks.lora"
    assert ALGOS.get("loha").network_module == "lycoris.kohya"
    from lorakiln.core.errors import ConfigError

    fam = FAMILIES.get("tiny-sd15")
    with pytest.raises(ConfigError, match="unknown adapter options"):
        create_network(fam, fam.build_empty("meta"), NetworkSpec("lora", args={"bogus": 1}))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["lora", "loha", "dora"])
def test_half_precision_training_step_on_cuda(kind):
    fam = FAMILIES.get("tiny-sdxl")
    comps = fam.load("tiny-sdxl", dtype=torch.float16)
    for m in (comps.unet, comps.vae, *comps.text_encoders):
        m.to("cuda")
    assert comps.vae.dtype == torch.float32  # SDXL VAE kept in fp32
    net = create_network(fam, comps, SPECS[kind], seed=0).apply_to()
    lat = fam.encode_latents(comps, torch.rand(2, 3, 64, 64, device="cuda") * 2 - 1)
    cond = fam.encode_prompts(comps, ["a cat", "1girl"]).to("cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        pred = fam.predict(comps, lat, torch.tensor([10, 500], device="cuda"), cond)
        loss = F.mse_loss(pred.float(), torch.randn_like(lat))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.restore()
