"""kiln extract: base + LoRA baked in, then extracted, gives the LoRA's delta back."""

from __future__ import annotations

import json

import pytest
import torch
from test_merge_fixtures import (
    apply_in_model,
    components,
    lora_delta,
    random_lora,
    save_checkpoint,
    to_checkpoint,
)

from lorakiln.formats.lora_file import read_lora, read_metadata
from lorakiln.formats.lora_model import delta_weight, parse_lora
from lorakiln.merge.svd import rel_error


def _pair(tmp_path, family, arch, only=None, seed=1):
    comps, targets = components(family)
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, arch))
    sd = random_lora(targets, rank=2, seed=seed, only=only)
    apply_in_model(targets, sd, 1.0)
    tuned = save_checkpoint(tmp_path / "tuned.safetensors", to_checkpoint(comps, arch))
    return base, tuned, sd, targets


@pytest.mark.parametrize("family, arch", [("tiny-sd15", "sd15"), ("tiny-sdxl", "sdxl")])
def test_extract_recovers_the_lora(tmp_path, cli, family, arch):
    base, tuned, sd, targets = _pair(tmp_path, family, arch)
    out = tmp_path / "x.safetensors"
    code, text = cli("extract", tuned, base, "--rank", "2", "--conv-rank", "2", "--dtype", "fp32", "-o", out, "--json")
    assert code == 0, text
    assert json.loads(text)["error_max"] < 1e-4
    tensors, meta = read_lora(out)
    got = parse_lora(tensors).modules
    assert set(got) == set(targets)  # kohya names, every target, nothing else
    for name, mod in got.items():
        assert rel_error(delta_weight(mod, tuple(targets[name].weight.shape)), lora_delta(sd, name)) < 1e-4
    assert meta["ss_network_dim"] == "2" and meta["ss_sd_model_name"] == "base.safetensors"
    assert meta["ss_base_model_version"] == ("sdxl_base_v1-0" if arch == "sdxl" else "sd_v1")
    assert json.loads(meta["ss_network_args"])["conv_dim"] == "2"


def test_unchanged_text_encoder_and_convs_are_left_out(tmp_path, cli):
    base, tuned, sd, targets = _pair(tmp_path, "tiny-sd15", "sd15", only="lora_unet")
    out = tmp_path / "x.safetensors"
    code, text = cli("extract", tuned, base, "--rank", "2", "-o", out)
    assert code == 0, text
    assert "text encoder unchanged" in " ".join(text.split())
    names = set(parse_lora(read_lora(out)[0]).modules)
    assert names and all(n.startswith("lora_unet_") for n in names)
    assert not any(n.endswith(("conv1", "conv2", "_conv")) for n in names)  # no --conv-rank: kohya's targets only
    assert json.loads(read_metadata(out)["ss_network_args"]) == {}


def test_extract_refusals(tmp_path, cli):
    comps, _ = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    code, text = cli("extract", base, base, "-o", tmp_path / "x.safetensors")
    assert code == 1 and "nothing to extract" in text
    xl, _ = components("tiny-sdxl")
    other = save_checkpoint(tmp_path / "xl.safetensors", to_checkpoint(xl, "sdxl"))
    code, text = cli("extract", other, base, "-o", tmp_path / "x.safetensors")
    assert code == 1 and "sdxl" in text and "sd15" in text
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    code, text = cli("extract", junk, base, "-o", tmp_path / "x.safetensors")
    assert code == 1 and "junk.safetensors" in text and "not JSON" in text


def test_fp16_extraction_is_close(tmp_path):
    from lorakiln.merge.combine import RankPolicy
    from lorakiln.services.merge import extract

    base, tuned, sd, targets = _pair(tmp_path, "tiny-sd15", "sd15", seed=4)
    rep = extract(tuned, base, tmp_path / "h.safetensors", RankPolicy(rank=2, conv_rank=2), dtype=torch.float16)
    assert rep.summary()["error_max"] < 5e-3  # fp16 rounding only
