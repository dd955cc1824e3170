"""`kiln sample` and the sampling engine on the tiny SD1.5 family: seeds, LoRAs, emphasis, infotext, reuse."""

import numpy as np
import pytest
import torch

from lorakiln.evaluate.infotext import parse_infotext, read_png_infotext
from lorakiln.evaluate.prompts import parse_attention
from lorakiln.evaluate.sampling import Engine, Job, LoraSpec, Settings, emphasise, encode_pair, token_weights
from lorakiln.train.families import FAMILIES
from tiny_run import lora_file

S0 = Settings(steps=3, width=64, height=64)


@pytest.fixture(scope="module")
def tiny():
    fam = FAMILIES.get("tiny-sd15")
    return fam, fam.load("tiny-sd15")


@pytest.fixture(scope="module")
def lora(tmp_path_factory, tiny):
    return lora_file(tmp_path_factory.mktemp("lora") / "kiln.safetensors", *tiny, scale=0.2)


def _render(engine, jobs):
    got = {}
    engine.render(jobs, lambda j, im: got.setdefault((j.seed, j.settings.loras), np.asarray(im).astype(int)))
    return got


def test_seed_decides_the_picture_not_the_batch(tiny, lora):
    fam, comps = tiny
    engine = Engine(fam, comps, batch_size=3)
    with_lora = Settings(steps=3, width=64, height=64, loras=(LoraSpec(str(lora)),))
    batch = _render(engine, [Job("1girl", "", s, st) for st in (S0, with_lora) for s in (1, 2, 3)])
    alone = _render(engine, [Job("1girl", "", 2, S0)])
    assert np.abs(batch[(2, ())] - alone[(2, ())]).mean() < 0.5  # same seed alone or in a batch
    assert np.abs(batch[(1, ())] - batch[(2, ())]).mean() > 5  # another seed is another picture
    assert np.abs(batch[(2, ())] - batch[(2, with_lora.loras)]).mean() > 5  # the LoRA changes it


def test_emphasis_weights_tokens_and_keeps_the_mean(tiny):
    fam, comps = tiny
    tok = comps.tokenizers[0]
    text, weights = token_weights(tok, "a (red:1.5) cat")
    assert text == "a red cat" and weights == [1.0, 1.5, 1.0]
    h = torch.randn(77, 32)
    e = emphasise(h, weights)
    assert torch.allclose(e.mean(), h.mean(), atol=1e-5)
    assert not torch.allclose(e[2], h[2]) and parse_attention("a (red:1.5) cat")[1] == ("red", 1.5)
    pos, neg = encode_pair(fam, comps, ["a (red:1.5) cat", "a red cat"], ["", ""], 1)
    assert pos.hidden_states.shape == neg.hidden_states.shape == (2, 77, 32)
    assert not torch.allclose(pos.hidden_states[0], pos.hidden_states[1])
    long = ", ".join(f"tag{i}" for i in range(30))
    pos, neg = encode_pair(fam, comps, [long], ["short"], 1)
    assert pos.hidden_states.shape[1] == neg.hidden_states.shape[1] == 152  # both padded to two windows


def test_kiln_sample_writes_a1111_metadata_and_reuses(cli, tmp_path, lora):
    out = tmp_path / "out"
    code, text = cli("sample", "kilnchan, 1girl, (solo:1.2)", "--base", "tiny-sd15", "--seed", "1,2", "--steps", "2",
                     "--lora", f"{lora}:0.8", "--sampler", "Euler a", "--out", str(out), "--clip-skip", "2",
                     cwd=tmp_path)
    assert code == 0, text
    files = sorted(out.glob("*.png"))
    assert len(files) == 2
    info = parse_infotext(read_png_infotext(files[0]))
    from lorakiln.formats.lora_file import tensor_hash

    assert info["Prompt"] == "kilnchan, 1girl, (solo:1.2), <lora:kiln:0.8>"
    assert info["Lora hashes map"] == {"kiln": tensor_hash(lora)[:12]}
    assert (info["Steps"], info["Sampler"], info["Size"], info["Clip skip"], info["Model"]) == \
           ("2", "Euler a", "64x64", "2", "tiny-sd15")
    assert {parse_infotext(read_png_infotext(f))["Seed"] for f in files} == {"1", "2"}
    assert info["Negative prompt"].startswith("lowres")  # [eval].negative by default
    code, text = cli("sample", "kilnchan, 1girl, (solo:1.2)", "--base", "tiny-sd15", "--seed", "1,2", "--steps", "2",
                     "--lora", f"{lora}:0.8", "--sampler", "Euler a", "--out", str(out), "--clip-skip", "2",
                     cwd=tmp_path)
    assert code == 0 and "reused 2" in text
    assert sorted(out.glob("*.png")) == files


def test_prompt_lora_tags_resolve_by_alias_and_prompt_files(cli, tmp_path, lora):
    pf = tmp_path / "prompts.txt"
    pf.write_text("# comment\n<lora:kiln:1>, 1girl --n bad --d 7 --s 2 --w 64 --h 64\n")
    code, text = cli("sample", "--prompt-file", str(pf), "--base", "tiny-sd15", "--lora-dir", str(lora.parent),
                     "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert code == 0, text
    (f,) = list((tmp_path / "o").glob("*.png"))
    info = parse_infotext(read_png_infotext(f))
    assert (info["Seed"], info["Negative prompt"], info["Steps"]) == ("7", "bad", "2")
    assert "kiln" in info["Lora hashes map"]
    code, text = cli("sample", "<lora:nope:1>, 1girl", "--base", "tiny-sd15", "--steps", "1", "--out",
                     str(tmp_path / "o"), cwd=tmp_path)
    assert code == 1 and "no LoRA file with that name" in text


def test_sdxl_family_samples_with_a_lora_and_zero_empty_negative(tmp_path):
    fam = FAMILIES.get("tiny-sdxl")
    comps = fam.load("tiny-sdxl")
    lora = lora_file(tmp_path / "xl.safetensors", fam, comps, scale=0.2)
    pos, neg = encode_pair(fam, comps, ["1girl", "1girl"], ["", "lowres"], 1)
    assert pos.pooled is not None and torch.count_nonzero(neg.hidden_states[0]) == 0
    assert torch.count_nonzero(neg.pooled[0]) == 0 and torch.count_nonzero(neg.hidden_states[1]) > 0
    s = Settings(steps=2, width=64, height=64, loras=(LoraSpec(str(lora)),))
    got = _render(Engine(fam, comps), [Job("1girl", "", 3, s), Job("1girl", "", 3, Settings(steps=2, width=64,
                                                                                             height=64))])
    (a, b) = got.values()
    assert a.shape == (64, 64, 3) and np.abs(a - b).mean() > 3
