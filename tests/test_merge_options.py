"""Bad numbers given to merge / resize / extract / lora convert / sample are refused with a message
naming the option or the FILE:WEIGHT, never a traceback or a quietly ruined file; a change too
large to compute with is named by module."""

from __future__ import annotations

import math

import pytest
import torch
from test_merge_core import LIN, lora_sd
from test_merge_fixtures import components, save_checkpoint, to_checkpoint

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_file import write_lora
from lorakiln.formats.lora_model import parse_lora
from lorakiln.merge.combine import RankPolicy
from lorakiln.merge.convert import convert_model
from lorakiln.merge.files import parse_weighted

SD15 = {"ss_base_model_version": "sd_v1", "ss_v2": "False"}


def _lora(path, seed=1, scale=1.0, dtype=torch.float16, meta=SD15):
    sd = {k: (v * scale if k.endswith("weight") else v).to(dtype) for k, v in lora_sd(seed, 4, 4.0).items()}
    write_lora(path, sd, meta)
    return path


def _clean(code, text):
    assert code != 0, text
    assert "Traceback" not in text and "LinAlgError" not in text and "no such file" not in text, text
    return " ".join(text.split())


@pytest.mark.parametrize("weight, says", [("1e400", "not a finite number"), ("nan", "not a finite number"),
                                          ("inf", "not a finite number"), ("-inf", "not a finite number"),
                                          ("1e40", "out of range"), ("-101", "out of range"),
                                          ("abc", "not a weight")])
def test_bad_merge_weights_are_named(tmp_path, cli, weight, says):
    a, b = _lora(tmp_path / "a.safetensors"), _lora(tmp_path / "b.safetensors", seed=2)
    out = tmp_path / "m.safetensors"
    for args in ((f"{a}:{weight}",), (f"{a}:1", f"{b}:{weight}")):
        text = _clean(*cli("merge", *args, "-o", out))
        assert f"{args[-1]}" in text and says in text, text
        assert not out.exists()
    assert "100" in _clean(*cli("merge", f"{a}:1e40", f"{b}:1", "-o", out))


def test_bake_and_sample_weights_are_checked_too(tmp_path, cli):
    a = _lora(tmp_path / "a.safetensors")
    comps, _ = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    text = _clean(*cli("merge", f"{a}:nan", "--into", base, "-o", tmp_path / "baked.safetensors"))
    assert f"{a}:nan" in text and "not a finite number" in text
    text = _clean(*cli("sample", "a girl", "--lora", f"{a}:1e400"))
    assert f"{a}:1e400" in text and "not a finite number" in text


def test_weights_are_checked_in_the_services(tmp_path):
    from lorakiln.services.merge import bake, merge

    a = _lora(tmp_path / "a.safetensors")
    for w in (math.nan, math.inf, 1e40):
        with pytest.raises(KilnError, match="weight"):
            merge([(a, w)], tmp_path / "m.safetensors")
        with pytest.raises(KilnError, match="weight"):
            bake(tmp_path / "no-base.safetensors", [(a, w)], tmp_path / "b.safetensors")


def test_parse_weighted_edge_cases(tmp_path):
    assert parse_weighted("a.safetensors:100") == (parse_weighted("a.safetensors")[0], 100.0)
    assert parse_weighted("a.safetensors:-0.5")[1] == -0.5
    for spec in ("a.safetensors:nan", "a.safetensors:1e400", "a.safetensors:-1e3"):
        with pytest.raises(KilnError, match="weight"):
            parse_weighted(spec)
    real = tmp_path / "x.safetensors"
    real.write_bytes(b"")
    with pytest.raises(KilnError, match="not a weight"):
        parse_weighted(f"{real}:heavy")
    assert parse_weighted(str(tmp_path / "dir:1" / "f.safetensors"))[1] == 1.0  # a colon in a folder name


def test_a_change_too_large_to_compute_names_the_module(tmp_path, cli):
    """fp32 factors of 1e20 are finite, but up·down (1e40) is not: a clear error, not LinAlgError."""
    huge = _lora(tmp_path / "huge.safetensors", scale=1e20, dtype=torch.float32)
    good = _lora(tmp_path / "good.safetensors", seed=2)
    for args in (("merge", huge, good, "-o", tmp_path / "m.safetensors"),
                 ("merge", huge, "--rank", "2", "-o", tmp_path / "m.safetensors"),
                 ("resize", huge, "--rank", "2", "-o", tmp_path / "r.safetensors")):
        text = _clean(*cli(*args))
        assert LIN in text and "NaN/Inf" in text, text
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_path / "r.safetensors").exists()


def test_extract_of_an_overflowing_difference_names_the_module(tmp_path, cli):
    comps, _ = components("tiny-sd15")
    base_sd = to_checkpoint(comps, "sd15")
    tuned_sd = {k: v.clone() for k, v in base_sd.items()}
    key = next(k for k in base_sd if k.endswith("attn1.to_q.weight"))
    base_sd[key][0, 0], tuned_sd[key][0, 0] = -3e38, 3e38  # both finite; their difference is not
    base = save_checkpoint(tmp_path / "base.safetensors", base_sd)
    tuned = save_checkpoint(tmp_path / "tuned.safetensors", tuned_sd)
    text = _clean(*cli("extract", tuned, base, "--rank", "2", "-o", tmp_path / "x.safetensors"))
    assert "attn1_to_q" in text and "NaN/Inf" in text and "too large" in text, text
    assert "--dtype" not in text  # no precision helps here
    assert not (tmp_path / "x.safetensors").exists()


def test_a_rank_below_one_is_refused_everywhere(tmp_path, cli):
    a, b = _lora(tmp_path / "a.safetensors"), _lora(tmp_path / "b.safetensors", seed=2)
    out = tmp_path / "o.safetensors"
    for rank in ("-5", "0"):
        for args in (("lora", "convert", a, out, "--target", "diffusers", "--rank", rank),
                     ("resize", a, "--rank", rank, "-o", out),
                     ("resize", a, "--rank", "2", "--conv-rank", rank, "-o", out),
                     ("merge", a, b, "--rank", rank, "-o", out),
                     ("extract", a, b, "--rank", rank, "-o", out)):
            text = _clean(*cli(*args))
            assert "--rank" in text or "--conv-rank" in text, (args, text)
            assert not out.exists(), args
    for bad in (0, -2):
        with pytest.raises(KilnError, match="from 1 to"):
            RankPolicy(rank=bad)
        with pytest.raises(KilnError, match="from 1 to"):
            RankPolicy(rank=4, conv_rank=bad)
        with pytest.raises(KilnError, match="from 1 to"):
            convert_model(parse_lora(lora_sd(1, 4, 4.0)), "diffusers", rank=bad)


def test_a_rank_below_one_is_refused_by_the_services(tmp_path):
    from lorakiln.services.convert import convert

    a = _lora(tmp_path / "a.safetensors")
    with pytest.raises(KilnError, match="--rank -5"):
        convert(a, tmp_path / "c.safetensors", "diffusers", rank=-5)
    assert not (tmp_path / "c.safetensors").exists()


@pytest.mark.parametrize("args, says", [
    (("--dynamic", "sv_fro", "1.5"), "--dynamic sv_fro 1.5"),
    (("--dynamic", "sv_cumulative", "0"), "--dynamic sv_cumulative 0"),
    (("--dynamic", "sv_ratio", "0.5"), "--dynamic sv_ratio 0.5"),
    (("--dynamic", "sv_fro", "nan"), "--dynamic sv_fro nan"),
    (("--dynamic", "bogus", "2"), "unknown dynamic rank method 'bogus'"),
    (("--rank", "2", "--clamp-quantile", "0"), "--clamp-quantile 0"),
    (("--rank", "2", "--clamp-quantile", "1.5"), "--clamp-quantile 1.5"),
    (("--rank", "2", "--clamp-quantile", "nan"), "--clamp-quantile nan"),
    (("--rank", "2", "--alpha", "0"), "--alpha 0"),
    (("--rank", "2", "--alpha", "-1"), "--alpha -1"),
    (("--concat", "--alpha", "nan"), "--alpha nan"),
    (("--concat", "--alpha", "0"), "--alpha 0"),
    (("--rank", "2", "--dtype", "fp8"), "unknown dtype 'fp8'"),
])
def test_merge_options_out_of_range(tmp_path, cli, args, says):
    a, b = _lora(tmp_path / "a.safetensors"), _lora(tmp_path / "b.safetensors", seed=2)
    text = _clean(*cli("merge", a, b, *args, "-o", tmp_path / "m.safetensors"))
    assert says in text, text
    assert not (tmp_path / "m.safetensors").exists()


def test_other_commands_options_out_of_range(tmp_path, cli):
    a = _lora(tmp_path / "a.safetensors")
    comps, _ = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    checks = [(("resize", a, "--dynamic", "sv_fro", "2", "-o", tmp_path / "r.safetensors"), "--dynamic sv_fro 2"),
              (("resize", a, "--rank", "2", "--clamp-quantile", "-0.1", "-o", tmp_path / "r.safetensors"),
               "--clamp-quantile -0.1"),
              (("lora", "convert", a, tmp_path / "c.safetensors", "--target", "comfyui", "--dtype", "fp64"),
               "unknown dtype"),
              (("extract", base, base, "--min-diff", "-1", "-o", tmp_path / "x.safetensors"), "--min-diff -1"),
              (("extract", base, base, "--min-diff", "nan", "-o", tmp_path / "x.safetensors"), "--min-diff nan"),
              (("info", a, "--top", "-1"), "--top"),
              (("lora", "keys", "--family", "tiny-sd15", "--dim", "0", "--tensors"), "--dim"),
              (("lora", "keys", "--family", "tiny-sd15", "--conv-dim", "-3"), "--conv-dim")]
    for args, says in checks:
        text = _clean(*cli(*args))
        assert says in text, (args, text)



def test_options_a_mode_would_ignore_are_refused(tmp_path, cli):
    a, b = _lora(tmp_path / "a.safetensors"), _lora(tmp_path / "b.safetensors", seed=2)
    out = tmp_path / "m.safetensors"
    for extra in (("--rank", "4"), ("--dynamic", "sv_fro", "0.9"), ("--clamp-quantile", "0.99")):
        text = _clean(*cli("merge", a, b, "--concat", *extra, "-o", out))
        assert "--concat" in text and "do not apply" in text, text
    text = _clean(*cli("merge", a, "--into", tmp_path / "base.safetensors", "--rank", "4", "--concat", "-o", out))
    assert "--rank, --concat do not apply with --into" in text
    assert not out.exists()
