"""kiln merge --into: baking into tiny SD1.5 / SDXL single files (LDM / SGM layouts, te2 packed
q/k/v) changes exactly the targeted weights by exactly the delta applied in the diffusers model."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_merge_fixtures import (
    apply_in_model,
    components,
    random_lora,
    save_checkpoint,
    save_lora,
    to_checkpoint,
)

from lorakiln.formats.lora_file import read_metadata
from lorakiln.formats.safetensors_io import read_header
from lorakiln.services.merge import bake

ARCHS = [("tiny-sd15", "sd15"), ("tiny-sdxl", "sdxl")]


@pytest.mark.parametrize("family, arch", ARCHS)
def test_bake_changes_exactly_the_targets(tmp_path, family, arch):
    comps, targets = components(family)
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, arch))
    sd = random_lora(targets, seed=1)
    lora = save_lora(tmp_path / "l.safetensors", sd, arch)
    rep = bake(base, [(lora, 0.8)], tmp_path / "out.safetensors")
    assert rep.extra["modules_unmatched"] == 0 and rep.extra["modules_applied"] == len(targets)
    apply_in_model(targets, sd, 0.8)
    want, got, before = to_checkpoint(comps, arch), load_file(str(tmp_path / "out.safetensors")), load_file(str(base))
    assert set(got) == set(want)
    changed = {k for k in got if not torch.equal(got[k], before[k])}
    assert changed == {k for k in want if not torch.equal(want[k], before[k])}  # nothing else touched
    for k in changed:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    if arch == "sdxl":  # q/k/v of te2 land in row blocks of the packed in_proj_weight
        key = "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight"
        assert key in changed
    assert json.loads(read_metadata(tmp_path / "out.safetensors")["lorakiln.provenance"])["inputs"][0]["weight"] == 0.8


def test_weight_zero_and_dtype(tmp_path):
    comps, targets = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15", torch.float16))
    lora = save_lora(tmp_path / "l.safetensors", random_lora(targets, seed=1), "sd15")
    bake(base, [(lora, 0.0)], tmp_path / "zero.safetensors")
    a, b = load_file(str(base)), load_file(str(tmp_path / "zero.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    bake(base, [(lora, 1.0)], tmp_path / "one.safetensors")
    header = read_header(tmp_path / "one.safetensors")
    assert {t.dtype for t in header.tensors.values()} == {"F16"}  # the checkpoint's dtype is kept


def test_two_loras_stack_and_idempotency(tmp_path, cli):
    comps, targets = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    sd1, sd2 = random_lora(targets, seed=1, only="lora_unet"), random_lora(targets, seed=2, only="lora_te")
    l1, l2 = save_lora(tmp_path / "a.safetensors", sd1, "sd15"), save_lora(tmp_path / "b.safetensors", sd2, "sd15")
    out = tmp_path / "m.safetensors"
    code, text = cli("merge", "--into", base, f"{l1}:0.5", f"{l2}:1.5", "-o", out)
    assert code == 0, text
    assert "(sd15)" in text and "0 modules" not in text  # a bake reports weights and modules applied, not "0 modules"
    assert f"modules applied: {len(sd1) // 3 + len(sd2) // 3}" in text
    apply_in_model(targets, sd1, 0.5)
    apply_in_model(targets, sd2, 1.5)
    want, got = to_checkpoint(comps, "sd15"), load_file(str(out))
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-6)
    code, text = cli("merge", "--into", base, f"{l1}:0.5", f"{l2}:1.5", "-o", out)
    assert "up to date" in text


def test_wrong_architecture_is_refused(tmp_path, cli):
    comps, _ = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    _, xl_targets = components("tiny-sdxl")
    lora = save_lora(tmp_path / "xl.safetensors", random_lora(xl_targets, seed=1), "sdxl")
    code, text = cli("merge", "--into", base, lora, "-o", tmp_path / "o.safetensors")
    assert code == 1 and "sdxl" in text and "sd15" in text
