"""kiln info: what a LoRA is, its hashes, and metadata edits that leave the tensors alone."""

from __future__ import annotations

import hashlib
import json

import torch
from test_merge_core import lora_sd

from lorakiln.formats.lora_file import read_lora, read_metadata, tensor_hash, write_lora

META = {
    "ss_base_model_version": "sdxl_base_v1-0", "ss_network_module": "lycoris.kohya", "ss_network_dim": "4",
    "ss_network_alpha": "2", "ss_network_args": json.dumps({"algo": "locon", "conv_dim": "4"}),
    "ss_tag_frequency": json.dumps({"10_kafka": {"kafka_hsr": 40, "smile": 12, "long hair": 30},
                                    "2_extra": {"kafka_hsr": 5, "smile": 9}}),
    "ss_dataset_dirs": json.dumps({"10_kafka": {"n_repeats": 10, "img_count": 40}}),
    "ss_learning_rate": "0.0001", "ss_training_started_at": "1700000000", "ss_output_name": "kafka",
    "ssmd_cover_images": "x" * 5000,
}


def _file(tmp_path):
    p = tmp_path / "kafka.safetensors"
    sd = lora_sd(1, 4, 2.0)
    sd["lora_te1_text_model_encoder_layers_0_mlp_fc1.hada_w1_a"] = torch.randn(8, 2)
    sd["lora_te1_text_model_encoder_layers_0_mlp_fc1.hada_w1_b"] = torch.randn(2, 6)
    sd["lora_te1_text_model_encoder_layers_0_mlp_fc1.hada_w2_a"] = torch.randn(8, 2)
    sd["lora_te1_text_model_encoder_layers_0_mlp_fc1.hada_w2_b"] = torch.randn(2, 6)
    sd["bundle_emb.kafka"] = torch.zeros(2, 4)
    write_lora(p, sd, META)
    return p


def test_info_json(tmp_path, cli):
    p = _file(tmp_path)
    code, out = cli("info", p, "--json", "--top", "2")
    assert code == 0, out
    d = json.loads(out)
    assert d["architecture"]["from_metadata"] == "sdxl"
    m = d["modules"]
    assert m["total"] == 3 and m["by_algo"] == {"lora": 2, "loha": 1} and m["conv_kxk"] == 1
    assert m["by_part"] == {"unet": 2, "te1": 1} and m["ranks"] == {"4": 2, "2": 1} and m["ignored_count"] == 1
    per = {x["name"]: x for x in d["per_module"]}  # rank and alpha of every module
    loha = per["lora_te1_text_model_encoder_layers_0_mlp_fc1"]
    assert (loha["algo"], loha["rank"], loha["alpha"], loha["part"], loha["shape"]) == ("loha", 2, None, "te1", [8, 6])
    assert sorted((x["algo"], x["rank"], x["alpha"], x["scale"]) for x in per.values() if x["algo"] == "lora") == \
        [("lora", 4, 2.0, 0.5)] * 2
    assert d["network"]["args"] == {"algo": "locon", "conv_dim": "4"}
    assert d["dataset"]["tag_frequency_top"] == [["kafka_hsr", 45], ["long hair", 30]]
    assert d["training"]["ss_training_started_at"] == "2023-11-14T22:13:20+00:00"
    whole = p.read_bytes()
    n = int.from_bytes(whole[:8], "little")
    assert d["hashes"]["autov3"] == hashlib.sha256(whole[8 + n:]).hexdigest()[:12]
    assert d["hashes"]["autov2"] == hashlib.sha256(whole).hexdigest()[:10]
    assert d["hashes"]["sshs_matches_file"] is True
    assert d["metadata"]["ssmd_cover_images"].startswith("<5000 characters")


def test_info_text(tmp_path, cli):
    code, out = cli("info", _file(tmp_path))
    assert code == 0, out
    flat = " ".join(out.split())
    assert "AutoV3" in flat and "kafka_hsr (45)" in flat and "10_kafka (40 images x 10)" in flat
    code, out = cli("info", _file(tmp_path), "--modules")
    assert code == 0 and "lora_te1_text_model_encoder_layers_0_mlp_fc1" in out and "loha" in out


def test_set_and_unset_keep_tensor_bytes(tmp_path, cli):
    p = _file(tmp_path)
    before, tensors_before = tensor_hash(p), read_lora(p)[0]
    code, out = cli("info", p, "--set", "modelspec.trigger_phrase=kafka_hsr", "--set", "ss_output_name=kafka v2",
                    "--unset", "ssmd_cover_images")
    assert code == 0, out
    meta = read_metadata(p)
    assert meta["modelspec.trigger_phrase"] == "kafka_hsr" and meta["ss_output_name"] == "kafka v2"
    assert "ssmd_cover_images" not in meta
    assert tensor_hash(p) == before == meta["sshs_model_hash"]
    after = read_lora(p)[0]
    assert all(torch.equal(after[k], tensors_before[k]) for k in tensors_before)
    assert json.loads(cli("info", p, "--json")[1])["hashes"]["autov3"] == before[:12]


def test_bad_edits_and_files(tmp_path, cli):
    p = _file(tmp_path)
    code, out = cli("info", p, "--set", "novalue")
    assert code == 1 and "KEY=VALUE" in out
    code, out = cli("info", p, "--set", "sshs_model_hash=0")
    assert code == 1 and "computed by lorakiln" in out
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(p.read_bytes()[:100])
    code, out = cli("info", bad)
    assert code == 1 and "truncated" in out and "cut.safetensors" in out


def test_architecture_from_tensors_beats_metadata(tmp_path, cli):
    """The cross-attention key projection's input width is the text-embedding width (768 = SD1.x)."""
    name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"
    p = tmp_path / "mislabelled.safetensors"
    write_lora(p, {f"{name}.lora_down.weight": torch.randn(4, 768), f"{name}.lora_up.weight": torch.randn(640, 4)},
               {"ss_base_model_version": "sdxl_base_v1-0"})
    d = json.loads(cli("info", p, "--json")[1])
    assert d["architecture"] == {"detected": "sd15", "from_tensors": "sd15", "from_metadata": "sdxl"}


def test_a_stored_hash_that_does_not_match_the_tensors_is_flagged(tmp_path, cli):
    """Tensors changed after writing, metadata (and its sshs_model_hash) kept: info says so."""
    from safetensors.torch import save_file

    p = tmp_path / "a.safetensors"
    write_lora(p, lora_sd(0, 4, 2.0), {"ss_network_dim": "4"})
    tensors, meta = read_lora(p)
    save_file({k: torch.zeros_like(v) for k, v in tensors.items()}, str(p), metadata=meta)
    code, out = cli("info", p)
    assert code == 0 and "does not match the tensors" in out
    code, out = cli("info", p, "--json")
    assert json.loads(out)["hashes"]["sshs_matches_file"] is False
