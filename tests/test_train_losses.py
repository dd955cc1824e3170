"""Noise, timesteps, loss weighting and training state files."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
import torch

from lorakiln.config.train import LossConfig
from lorakiln.train.losses import (
    NoiseSchedule,
    diffusion_loss,
    elementwise_loss,
    huber_threshold,
    make_noise,
    rescale_zero_terminal_snr,
    sample_timesteps,
    timestep_weights,
)
from lorakiln.train.state import (
    Position,
    clean_partial_states,
    list_states,
    load_state,
    prune_states,
    rng_state,
    save_state,
    set_rng_state,
)


def sd_betas():
    return torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled_linear


def sched(pred="epsilon", zt=False):
    return NoiseSchedule.from_betas(sd_betas(), pred, zt)


def test_zero_terminal_snr_matches_diffusers():
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as theirs

    ours = rescale_zero_terminal_snr(sd_betas())
    torch.testing.assert_close(ours, theirs(sd_betas()), rtol=1e-9, atol=1e-12)
    s = sched(zt=True)
    assert float(s.alphas_cumprod[-1]) < 1e-12
    assert float(sched().alphas_cumprod[-1]) > 1e-3


def test_noising_and_targets():
    s = sched()
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([0, 999])
    noisy = s.add_noise(x0, eps, t)
    a = s.alphas_cumprod[t].view(-1, 1, 1, 1).float()
    torch.testing.assert_close(noisy, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    assert torch.equal(s.target(x0, eps, t), eps)
    v = sched("v_prediction").target(x0, eps, t)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)


def test_timesteps_range_and_generator():
    g = torch.Generator().manual_seed(1)
    t = sample_timesteps(5000, 200, 800, g)
    assert int(t.min()) >= 200 and int(t.max()) < 800
    assert torch.equal(sample_timesteps(8, 0, 1000, torch.Generator().manual_seed(3)),
                       sample_timesteps(8, 0, 1000, torch.Generator().manual_seed(3)))


def test_noise_offset_and_pyramid_noise():
    shape = (64, 4, 16, 16)
    plain = make_noise(shape, torch.Generator().manual_seed(0), LossConfig())
    offset = make_noise(shape, torch.Generator().manual_seed(0), LossConfig(noise_offset=0.5))
    # offset noise shifts each channel's mean: per-channel means spread far more than plain noise
    assert offset.mean(dim=(2, 3)).std() > 3 * plain.mean(dim=(2, 3)).std()
    pyr = make_noise(shape, torch.Generator().manual_seed(0), LossConfig(multires_noise_iterations=6,
                                                                          multires_noise_discount=0.3))
    assert abs(float(pyr.std()) - 1.0) < 1e-3  # renormalised
    # neighbouring pixels become correlated
    corr = lambda n: float((n[..., :, 1:] * n[..., :, :-1]).mean())  # noqa: E731
    assert corr(pyr) > corr(plain) + 0.02
    rnd = make_noise((256, 4, 4, 4), torch.Generator().manual_seed(0),
                     LossConfig(noise_offset=0.5, noise_offset_random_strength=True))
    assert rnd.mean(dim=(2, 3)).std() < offset.mean(dim=(2, 3)).std() * 1.5


def test_min_snr_weights_epsilon_and_v():
    s, sv = sched(), sched("v_prediction")
    t = torch.tensor([10, 500, 990])
    snr = s.snr(t)
    w = timestep_weights(t, s, LossConfig(min_snr_gamma=5))
    torch.testing.assert_close(w, (snr.clamp(max=5) / snr).float())
    assert float(w[0]) < 1 and float(w[2]) == pytest.approx(1.0)  # low noise is down-weighted
    wv = timestep_weights(t, sv, LossConfig(min_snr_gamma=5))
    torch.testing.assert_close(wv, (snr.clamp(max=5) / (snr + 1)).float())
    assert torch.equal(timestep_weights(t, s, LossConfig(min_snr_gamma=0)), torch.ones(3))
    zt = NoiseSchedule.from_betas(sd_betas(), "v_prediction", True)  # SNR 0 at the end stays finite
    assert torch.isfinite(timestep_weights(torch.tensor([999]), zt, LossConfig(min_snr_gamma=5))).all()
    deb = timestep_weights(t, s, LossConfig(min_snr_gamma=0, debiased_estimation_loss=True))
    torch.testing.assert_close(deb, (1 / snr.sqrt()).float())


def test_loss_types_and_huber_schedules():
    p, q = torch.zeros(1, 1, 1, 2), torch.tensor([[[[0.05, 3.0]]]])
    assert torch.allclose(elementwise_loss(p, q, "l2"), q**2)
    assert torch.allclose(elementwise_loss(p, q, "l1"), q.abs())
    c = torch.tensor([0.1])
    hub = elementwise_loss(p, q, "huber", c)
    assert torch.allclose(hub, 2 * 0.1 * (torch.sqrt(q**2 + 0.01) - 0.1))
    assert hub[..., 1] < (q**2)[..., 1] and abs(float(hub[..., 0]) - 0.05**2) < 5e-4  # quadratic near 0
    t = torch.tensor([0, 500, 999])
    const = huber_threshold(t, sched(), LossConfig(huber_schedule="constant", huber_c=0.1))
    assert torch.allclose(const, torch.full((3,), 0.1, dtype=const.dtype))
    exp = huber_threshold(t, sched(), LossConfig(huber_schedule="exponential", huber_c=0.1))
    assert float(exp[0]) == pytest.approx(1.0) and float(exp[2]) == pytest.approx(0.1, rel=0.01)
    snr = huber_threshold(t, sched(), LossConfig(huber_schedule="snr", huber_c=0.1))
    assert float(snr[0]) > 0.9 and 0.1 < float(snr[2]) < 0.2 and float(snr[0]) > float(snr[1]) > float(snr[2])


def test_diffusion_loss_prior_weight():
    s = sched()
    pred, target = torch.zeros(2, 4, 2, 2), torch.ones(2, 4, 2, 2)
    t = torch.tensor([500, 500])
    cfg = LossConfig(min_snr_gamma=0)
    assert float(diffusion_loss(pred, target, t, s, cfg)) == pytest.approx(1.0)
    assert float(diffusion_loss(pred, target, t, s, cfg, torch.tensor([1.0, 0.5]))) == pytest.approx(0.75)


def test_state_round_trip_rng_and_atomic_dirs(tmp_path):
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    rs = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters())
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    set_rng_state(rs)
    pos = Position(epoch=2, batch=3, step=7)
    path = save_state(tmp_path, pos, weights=lin.state_dict(), optimizer=opt.state_dict(),
                      scheduler=sch.state_dict(), extra={"session_id": 5})
    assert path.name == "step-00000007"
    random.random(), np.random.rand(), torch.rand(1)  # move the RNGs on
    st = load_state(path)
    assert st.position == pos and st.extra == {"session_id": 5}
    set_rng_state(st.rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    opt2 = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    opt2.load_state_dict(st.optimizer)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    torch.testing.assert_close(st.weights["weight"], lin.weight.detach())
    # an interrupted save leaves a temp folder that is never taken for a state and is cleaned
    tmp = tmp_path / ".tmp-step-00000009-123"
    shutil.copytree(path, tmp)
    assert [p.name for p in list_states(tmp_path)] == ["step-00000007"]
    assert clean_partial_states(tmp_path) == 1 and not tmp.exists()
    # saving the same step again replaces it; pruning keeps the newest
    save_state(tmp_path, Position(2, 3, 7), weights={}, optimizer={}, scheduler={})
    save_state(tmp_path, Position(3, 0, 9), weights={}, optimizer={}, scheduler={})
    assert [p.name for p in prune_states(tmp_path, 1)] == ["step-00000007"]
    assert [p.name for p in list_states(tmp_path)] == ["step-00000009"]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]
