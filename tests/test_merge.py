"""kiln merge on files: exact results, metadata and provenance, idempotency, clear refusals."""

from __future__ import annotations

import json
import pickle

import torch
from test_merge_core import CONV, LIN, by_hand, lora_sd
from test_merge_fixtures import components, random_lora, save_checkpoint, to_checkpoint

from lorakiln.formats.lora_file import read_lora, read_metadata, tensor_hash, write_lora
from lorakiln.formats.lora_model import delta_weight, parse_lora
from lorakiln.merge.files import parse_weighted
from lorakiln.merge.svd import rel_error

SD15 = {"ss_base_model_version": "sd_v1", "ss_v2": "False", "ss_network_dim": "4",
        "ss_tag_frequency": json.dumps({"10_kafka": {"kafka_hsr": 10, "smile": 4}})}


def _write(path, sd, meta=SD15):
    write_lora(path, sd, meta)
    return path


def _delta(path, name, shape):
    t, _ = read_lora(path)
    return delta_weight(parse_lora(t).modules[name], shape)


def test_merge_writes_the_exact_sum_with_provenance(tmp_path, cli):
    a = _write(tmp_path / "a.safetensors", lora_sd(1, 4, 2.0))
    b = _write(tmp_path / "b.safetensors", lora_sd(2, 4, 4.0))
    code, out = cli("merge", f"{a}:0.6", f"{b}:0.4", "-o", tmp_path / "m.safetensors", "--dtype", "fp32")
    assert code == 0, out
    assert "error max" in out
    want = 0.6 * by_hand(lora_sd(1, 4, 2.0), CONV) + 0.4 * by_hand(lora_sd(2, 4, 4.0), CONV)
    assert rel_error(_delta(tmp_path / "m.safetensors", CONV, (12, 8, 3, 3)), want) < 1e-5
    meta = read_metadata(tmp_path / "m.safetensors")
    for key in ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
                "ss_base_model_version", "ss_v2", "sshs_model_hash", "modelspec.architecture"):
        assert key in meta
    assert meta["ss_base_model_version"] == "sd_v1" and meta["modelspec.merged_from"] == "a.safetensors, b.safetensors"
    prov = json.loads(meta["lorakiln.provenance"])
    assert [(i["file"], i["weight"]) for i in prov["inputs"]] == [("a.safetensors", 0.6), ("b.safetensors", 0.4)]
    assert prov["inputs"][0]["sshs_model_hash"] == tensor_hash(a) and prov["method"] == "svd"
    assert all(str(tmp_path) not in v for v in meta.values())  # names, never paths
    assert json.loads(meta["ss_tag_frequency"]) == {"a/10_kafka": {"kafka_hsr": 10, "smile": 4},
                                                    "b/10_kafka": {"kafka_hsr": 10, "smile": 4}}


def test_merge_is_idempotent_and_redoes_on_change(tmp_path, cli):
    a = _write(tmp_path / "a.safetensors", lora_sd(1, 4, 2.0))
    out = tmp_path / "m.safetensors"
    assert cli("merge", f"{a}:0.5", "-o", out, "--rank", "2")[0] == 0
    first = out.stat().st_mtime_ns
    code, text = cli("merge", f"{a}:0.5", "-o", out, "--rank", "2")
    assert code == 0 and "up to date" in text and out.stat().st_mtime_ns == first
    assert cli("merge", f"{a}:0.7", "-o", out, "--rank", "2")[0] == 0
    assert json.loads(read_metadata(out)["lorakiln.provenance"])["inputs"][0]["weight"] == 0.7
    code, text = cli("merge", f"{a}:0.7", "-o", out, "--rank", "2", "--force", "--json")
    assert code == 0 and json.loads(text)["skipped"] is False


def test_concat_through_the_cli(tmp_path, cli):
    a = _write(tmp_path / "a.safetensors", lora_sd(1, 4, 2.0))
    b = _write(tmp_path / "b.safetensors", lora_sd(2, 3, 1.0))
    code, text = cli("merge", f"{a}:0.7", f"{b}:-0.3", "-o", tmp_path / "c.safetensors", "--concat",
                     "--dtype", "fp32", "--json")
    assert code == 0, text
    assert json.loads(text)["error_max"] < 1e-5
    want = 0.7 * by_hand(lora_sd(1, 4, 2.0), LIN) - 0.3 * by_hand(lora_sd(2, 3, 1.0), LIN)
    assert rel_error(_delta(tmp_path / "c.safetensors", LIN, (32, 24)), want) < 1e-5


def test_dora_needs_base_and_works_with_it(tmp_path, cli):
    comps, targets = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    name = next(n for n in targets if n.endswith("attn1_to_q"))
    sd = random_lora({name: targets[name]}, rank=2, alpha=2.0, seed=3, scale=0.5)
    w0 = targets[name].weight.detach().clone()
    sd[f"{name}.dora_scale"] = w0.norm(dim=1, keepdim=True) * 1.2  # per output row (LyCORIS >= 3.2)
    d = _write(tmp_path / "dora.safetensors", sd)
    code, text = cli("merge", f"{d}:1", "-o", tmp_path / "m.safetensors")
    assert code == 1 and "DoRA" in text and "--base" in text
    code, text = cli("merge", f"{d}:1", "-o", tmp_path / "m.safetensors", "--base", base, "--dtype", "fp32")
    assert code == 0, text
    w = w0 + (sd[f"{name}.lora_up.weight"] @ sd[f"{name}.lora_down.weight"])
    want = sd[f"{name}.dora_scale"] * w / w.norm(dim=1, keepdim=True) - w0
    assert rel_error(_delta(tmp_path / "m.safetensors", name, tuple(w0.shape)), want) < 1e-4


def test_refusals_are_clear(tmp_path, cli):
    a = _write(tmp_path / "a.safetensors", lora_sd(1, 4, 2.0))
    xl = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    x = _write(tmp_path / "x.safetensors", {f"{xl}.lora_down.weight": torch.randn(2, 24),
                                             f"{xl}.lora_up.weight": torch.randn(32, 2)},
               {"ss_base_model_version": "sdxl_base_v1-0"})
    code, text = cli("merge", a, x, "-o", tmp_path / "m.safetensors")
    assert code == 1 and "different base models" in text
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": {}}))
    code, text = cli("merge", a, ckpt, "-o", tmp_path / "m.safetensors")
    assert code == 1 and "old.ckpt" in text and "never unpickles" in text
    plain = tmp_path / "model.safetensors"
    save_checkpoint(plain, {"model.diffusion_model.out.2.weight": torch.zeros(4, 4)})
    code, text = cli("merge", plain, "-o", tmp_path / "m.safetensors")
    assert code == 1 and "no LoRA modules" in text
    code, text = cli("merge", a, "-o", a)
    assert code == 1 and "overwrite an input" in text
    code, text = cli("merge", f"{a}:0", "-o", tmp_path / "z.safetensors")
    assert code == 1 and "weight 0" in text


def test_parse_weighted(tmp_path):
    assert parse_weighted("a.safetensors:0.6")[1] == 0.6
    assert parse_weighted("dir/a.safetensors:-1.5e-1") == (parse_weighted("dir/a.safetensors")[0], -0.15)
    assert parse_weighted("a.safetensors") == (parse_weighted("a.safetensors")[0], 1.0)
    odd = tmp_path / "weird:2"  # a file whose name ends like a weight is taken as a file
    odd.write_bytes(b"")
    assert parse_weighted(str(odd)) == (odd, 1.0)
