"""Option and axis values of kiln eval / grid / sample: an empty item or a number out of range is
an error naming the value, never skipped or read as something else.

Seen in a trial: `--checkpoints last:0` and `last:-1` evaluated the final file; `-w 0.6,,1` ran.
"""

from __future__ import annotations

import re

import pytest

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.axes import AxisContext, parse_axis
from lorakiln.evaluate.prompts import float_values, int_values
from lorakiln.services.evaluate import checkpoint_choice, select_checkpoints
from lorakiln.services.runs import Checkpoint


@pytest.mark.parametrize("spec", ["last:0", "last:-1", "last:x", "last:1.5", "2,,4", "2,x", ",", "2,"])
def test_bad_checkpoint_spec_is_an_error(spec):
    with pytest.raises(KilnError, match=re.escape(repr(spec.strip()))):
        checkpoint_choice(spec)


@pytest.mark.parametrize("spec, choice", [("all", None), ("last", 1), ("LAST:3", 3), ("last: 2", 2),
                                          ("2,4, 6", {2, 4, 6})])
def test_good_checkpoint_specs(spec, choice):
    assert checkpoint_choice(spec) == choice


def test_select_checkpoints_names_the_setting(tmp_path):
    found = [Checkpoint(f"epoch {i}", tmp_path / f"k-{i:06d}.safetensors", i) for i in (1, 2, 3)]
    assert [c.epoch for c in select_checkpoints(found, "last:2", 6)] == [2, 3]
    with pytest.raises(KilnError, match=r"\[eval\] checkpoints 'last:0'"):
        select_checkpoints(found, "last:0", 6)


@pytest.mark.parametrize("text", ["0.6,,1", "0.6,1,", ",0.6", " , "])
def test_empty_items_are_errors(text):
    with pytest.raises(KilnError, match="empty item|no values"):
        float_values(text)
    with pytest.raises(KilnError):
        int_values(text.replace("0.6", "2"))


@pytest.mark.parametrize("text", ["1-1000000000", "0-1[5000]", "inf", "nan", "1,inf"])
def test_huge_ranges_and_non_finite_numbers_are_errors(text):
    with pytest.raises(KilnError):
        float_values(text) if "inf" in text or "nan" in text or "." in text else int_values(text)


@pytest.mark.parametrize("spec, words", [
    ("steps=0,20", "steps 0 is out of range"), ("steps=-5", "out of range"), ("steps=2000", "out of range"),
    ("cfg=-1", "CFG -1 is out of range"), ("cfg=500", "out of range"), ("seed=-3", "seed -3 is out of range"),
    ("weight=11", "weight 11 is out of range"), ("weight=0.6,,1", "empty item"), ("seed=1,,2", "empty item"),
    ("sampler=euler_a,,ddim", "empty item"), ("checkpoint=last:0", "last:N"), ("checkpoint=2,,4", "empty item"),
])
def test_bad_axis_values_are_errors_naming_the_axis(spec, words):
    ctx = AxisContext(checkpoints={"epoch 2": "/r/k-000002.safetensors", "epoch 4": "/r/k-000004.safetensors"})
    with pytest.raises(KilnError, match=rf"bad axis {re.escape(repr(spec))}: .*{re.escape(words)}"):
        parse_axis(spec, ctx)


def test_prompt_axis_still_takes_an_empty_replacement():
    axis, _ = parse_axis("prompt=-000010,", AxisContext())
    assert axis.values == ["-000010", ""]


@pytest.mark.parametrize("args, words", [
    (["--checkpoints", "last:0"], "bad --checkpoints 'last:0'"),
    (["--checkpoints", "last:-1"], "bad --checkpoints 'last:-1'"),
    (["-w", "0.6,,1"], "bad --weights '0.6,,1': an empty item"),
    (["--seeds", "1,,2"], "bad --seeds '1,,2': an empty item"),
])
def test_kiln_eval_names_the_bad_option(project, cli, args, words):
    code, out = cli("eval", *args, cwd=project.root)
    assert code == 1 and words in " ".join(out.split())


def test_kiln_sample_names_a_bad_seed(project, cli):
    code, out = cli("sample", "a cat", "--seed", "-4", cwd=project.root)
    assert code == 1 and "bad --seed '-4': seed -4 is out of range" in " ".join(out.split())
