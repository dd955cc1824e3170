import math

import pytest
import torch

from lorakiln.config.train import OptimizerConfig
from lorakiln.core.errors import KilnError
from lorakiln.train.optim import OPTIMIZERS, build_optimizer, describe, find_optimizer, parse_optimizer_args
from lorakiln.train.schedulers import SCHEDULERS, build_scheduler, multiplier, warmup_steps, Shape


def _groups():
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = torch.nn.Linear(4, 2)
    return a, b, [{"params": list(a.parameters()), "lr": 1e-3}, {"params": list(b.parameters()), "lr": 5e-4}]


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_registered_optimizer_builds_and_steps(name):
    spec = OPTIMIZERS.get(name)
    if spec.needs_cuda and not torch.cuda.is_available():
        with pytest.raises(KilnError, match="CUDA"):
            build_optimizer(name, _groups()[2], 1e-3, {})
        pytest.skip(f"{name} needs CUDA (checked that it refuses clearly without it)")
    a, b, groups = _groups()
    if spec.single_lr:
        with pytest.raises(KilnError, match="one learning rate"):
            build_optimizer(name, groups, 1e-3, {})
        for g in groups:
            g["lr"] = 1.0
    opt = build_optimizer(name, groups, 1e-3, {})
    before = a.weight.detach().clone()
    x = torch.randn(16, 8)
    for _ in range(3):
        loss = b(torch.relu(a(x))).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, a.weight), f"{name} did not change the weights"
    expected = [1.0, 1.0] if spec.single_lr else [1e-3, 5e-4]
    assert [g["lr"] for g in opt.param_groups] == expected  # per-group LRs kept
    sd = opt.state_dict()
    torch.save(sd, "/dev/null")  # serialisable for states


def test_optimizer_names_are_case_insensitive_and_dotted_paths_work():
    assert find_optimizer("adamw").name == "AdamW"
    assert find_optimizer("PRODIGY").name == "Prodigy"
    spec = find_optimizer("pytorch_optimizer.CAME")
    opt = spec.factory(_groups()[2], lr=1e-3)
    assert type(opt).__name__ == "CAME"
    with pytest.raises(KilnError, match="unknown optimizer 'nope'.*AdamW"):
        find_optimizer("nope")


def test_prodigy_defaults_are_seed_001s():
    spec = OPTIMIZERS.get("Prodigy")
    assert spec.defaults == {"decouple": True, "weight_decay": 0.01, "betas": (0.9, 0.999), "d_coef": 2.0,
                             "use_bias_correction": True, "safeguard_warmup": True}
    groups = _groups()[2]
    for g in groups:
        g["lr"] = 1.0
    opt = build_optimizer("Prodigy", groups, 1.0, {})
    g = opt.param_groups[0]
    assert g["d_coef"] == 2.0 and g["safeguard_warmup"] and g["use_bias_correction"]


@pytest.mark.parametrize("text,expected", [
    ("weight_decay=0.1 betas=0.9,0.99", {"weight_decay": 0.1, "betas": (0.9, 0.99)}),
    ("weight_decay=0.1, betas=[0.9,0.99]", {"weight_decay": 0.1, "betas": (0.9, 0.99)}),
    ("decouple=True, weight_decay=0.01, betas=[0.9,0.999], d_coef=2, use_bias_correction=True, safeguard_warmup=True",
     {"decouple": True, "weight_decay": 0.01, "betas": (0.9, 0.999), "d_coef": 2, "use_bias_correction": True,
      "safeguard_warmup": True}),
    (["weight_decay=0.04", "eps=1e-8"], {"weight_decay": 0.04, "eps": 1e-8}),
    ({"betas": [0.9, 0.99]}, {"betas": (0.9, 0.99)}),
    ("", {}),
    ("relative_step=false scale_parameter=False", {"relative_step": False, "scale_parameter": False}),
])
def test_parse_kohya_optimizer_args(text, expected):
    assert parse_optimizer_args(text) == expected


def test_bad_optimizer_args_are_clear():
    with pytest.raises(KilnError, match="key=value"):
        parse_optimizer_args("0.1 betas=1")
    with pytest.raises(KilnError, match="bad optimizer_args"):
        build_optimizer("AdamW", _groups()[2], 1e-3, {"no_such_arg": 1})


def test_describe_is_kohya_like():
    assert describe("AdamW", {"weight_decay": 0.1}) == "AdamW(weight_decay=0.1)"


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_every_registered_scheduler_builds_and_steps(name):
    a, b, groups = _groups()
    opt = torch.optim.SGD(groups, lr=1e-3)
    cfg = OptimizerConfig(lr_scheduler=name, lr_warmup_steps=2, lr_scheduler_num_cycles=2)
    sched = build_scheduler(opt, name, 20, cfg)
    lrs = []
    for _ in range(20):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
    for u, t in lrs:  # the two groups keep their ratio
        assert math.isclose(t, u * 0.5, rel_tol=1e-9, abs_tol=1e-15)
    assert max(u for u, _ in lrs) <= 1e-3 + 1e-12
    sd = sched.state_dict()
    sched2 = build_scheduler(torch.optim.SGD(_groups()[2], lr=1e-3), name, 20, cfg)
    sched2.load_state_dict(sd)
    assert sched2.last_epoch == sched.last_epoch


def test_warmup_steps_count_or_ratio():
    assert warmup_steps(0.05, 1000) == 50
    assert warmup_steps(10, 1000) == 10
    assert warmup_steps(0, 1000) == 0


def test_schedule_shapes():
    s = Shape()
    assert multiplier("constant", 0, 100, 10, s) == 1.0
    assert multiplier("constant_with_warmup", 5, 100, 10, s) == 0.5
    assert multiplier("linear", 10, 110, 10, s) == 1.0
    assert math.isclose(multiplier("linear", 60, 110, 10, s), 0.5)
    assert math.isclose(multiplier("cosine", 55, 100, 10, s), 0.5)
    assert math.isclose(multiplier("cosine", 100, 100, 10, s), 0.0, abs_tol=1e-12)
    assert math.isclose(multiplier("polynomial", 50, 100, 0, Shape(power=2.0)), 0.25)
    # REX stays above linear in the middle and ends at the floor
    assert multiplier("rex", 50, 100, 0, s) > multiplier("linear", 50, 100, 0, s)
    assert math.isclose(multiplier("rex", 50, 100, 0, s), 2 / 3)
    assert math.isclose(multiplier("rex", 100, 100, 0, s, floor=0.01), 0.01)


def test_cosine_restarts_decay_per_cycle_like_animagine():
    s = Shape(cycles=3, cycle_decay=0.9)
    peaks = [multiplier("cosine_with_restarts", k * 100, 300, 0, s) for k in range(3)]
    assert [round(p, 6) for p in peaks] == [1.0, 0.9, 0.81]
    assert multiplier("cosine_with_restarts", 99, 300, 0, s) < 0.01


def test_min_lr_floor_per_group():
    a, b, groups = _groups()
    opt = torch.optim.SGD(groups, lr=1e-3)
    cfg = OptimizerConfig(lr_scheduler="cosine", lr_warmup_steps=0, min_lr=1e-4)
    sched = build_scheduler(opt, "cosine", 10, cfg)
    for _ in range(10):
        opt.step()
        sched.step()
    assert [round(g["lr"], 12) for g in opt.param_groups] == [1e-4, 1e-4]
