"""optimizer_args are checked when the config is validated and in the dry run, not after the
latents are cached (issue 10 hardening: weight_decay=nan and betas=(0.9, reached the optimizer)."""

from __future__ import annotations

import json

import pytest

from lorakiln.config.optimizer_args import BadOptimizerArgs, parse_optimizer_args
from test_train_cli import _project


@pytest.mark.parametrize("text", ["weight_decay=nan", "betas=(0.9,", "eps=1e999", "eps=", "betas=[0.9,[0.99]]",
                                  "betas=0.9,inf"])
def test_malformed_values_are_rejected_with_the_key(text):
    with pytest.raises(BadOptimizerArgs, match=text.split("=")[0]):
        parse_optimizer_args(text)
    with pytest.raises(BadOptimizerArgs):
        parse_optimizer_args({"weight_decay": float("nan")})


def test_the_kohya_forms_still_parse():
    assert parse_optimizer_args("weight_decay=0.1 betas=0.9,0.99 decouple=True d0=1e-6 mode=foo") == {
        "weight_decay": 0.1, "betas": (0.9, 0.99), "decouple": True, "d0": 1e-6, "mode": "foo"}
    assert parse_optimizer_args(["weight_decay=0.1", "betas=[0.9,0.99]"]) == {"weight_decay": 0.1,
                                                                              "betas": (0.9, 0.99)}
    assert parse_optimizer_args({"betas": [0.9, 0.99], "name": "x"}) == {"betas": (0.9, 0.99), "name": "x"}


def test_bad_optimizer_args_fail_at_validation_and_in_the_dry_run(cli, tmp_path):
    root = _project(tmp_path, cli)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"optimizer_args": ["weight_decay=nan", "betas=(0.9,"]}))
    code, out = cli("config", "import", bad, cwd=root)
    assert "optimizer_args" not in (root / "project.toml").read_text()  # rejected, not mapped
    toml = root / "project.toml"
    text = toml.read_text()
    toml.write_text(text + '\n[train.optimizer]\noptimizer_args = "weight_decay=nan"\n')
    for args in (("config", "show"), ("train", "--dry-run", "--no-memory")):
        code, out = cli(*args, cwd=root)
        flat = " ".join(out.split())
        assert code == 1 and "project.toml" in flat and "optimizer_args" in flat and "finite" in flat, out
    toml.write_text(text + '\n[train.optimizer]\noptimizer_args = "weight_decay=0.1 bogus=3"\n')
    code, out = cli("train", "--dry-run", "--no-memory", cwd=root)
    assert code == 1 and "bogus" in out
    code, out = cli("train", cwd=root)  # fails before any model loads or cache is written
    assert code == 1 and "bogus" in out and not any((root / "cache").glob("**/*.safetensors"))
    code, out = cli("train", "--dry-run", "--no-memory", "--optimizer-args", "betas=(0.9,", cwd=root)
    assert code == 1 and "command line" in out and "betas" in out
    toml.write_text(text + '\n[train.optimizer]\noptimizer_args = "weight_decay=0.05 betas=0.9,0.99"\n')
    code, out = cli("train", "--dry-run", "--no-memory", cwd=root)
    assert code == 0, out
