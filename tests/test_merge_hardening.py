"""Outputs of merge/resize/extract/bake describe every input truly, carry ModelSpec title and
date, and NaN/Inf in any input or result is named instead of crashing or being written."""

from __future__ import annotations

import json
import re

from test_merge_core import LIN, lora_sd
from test_merge_fixtures import apply_in_model, components, random_lora, save_checkpoint, save_lora, to_checkpoint

from lorakiln.formats.lora_file import read_metadata, write_lora

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")


def _meta(trigger, folder, tags, clip_skip="2", model="animagine-xl-3.1.safetensors"):
    return {"ss_base_model_version": "sd_v1", "ss_v2": "False", "modelspec.trigger_phrase": trigger,
            "ss_tag_frequency": json.dumps({folder: tags}),
            "ss_dataset_dirs": json.dumps({folder: {"n_repeats": 10, "img_count": 4}}),
            "ss_sd_model_name": model, "ss_clip_skip": clip_skip, "ss_output_name": trigger}


def _inputs(tmp_path, clip_b="2"):
    a, b = tmp_path / "kafka.safetensors", tmp_path / "march.safetensors"
    write_lora(a, lora_sd(1, 4, 2.0), _meta("kafka_hsr", "10_kafka", {"kafka_hsr": 4, "smile": 3}))
    write_lora(b, lora_sd(2, 4, 4.0), _meta("march_7th, pink hair", "5_march", {"march_7th": 4}, clip_skip=clip_b))
    return a, b


def test_merged_metadata_describes_every_input(tmp_path, cli):
    a, b = _inputs(tmp_path)
    out = tmp_path / "duo.safetensors"
    code, text = cli("merge", f"{a}:0.6", f"{b}:0.4", "-o", out)
    assert code == 0, text
    meta = read_metadata(out)
    assert meta["modelspec.trigger_phrase"] == "kafka_hsr, march_7th, pink hair"
    assert json.loads(meta["ss_tag_frequency"]) == {"kafka/10_kafka": {"kafka_hsr": 4, "smile": 3},
                                                    "march/5_march": {"march_7th": 4}}
    assert set(json.loads(meta["ss_dataset_dirs"])) == {"kafka/10_kafka", "march/5_march"}
    assert meta["ss_sd_model_name"] == "animagine-xl-3.1.safetensors" and meta["ss_clip_skip"] == "2"
    comment = meta["ss_training_comment"]
    assert "kafka.safetensors x0.6" in comment and "march.safetensors x0.4" in comment
    assert "rank full" not in comment and "every direction" in comment and "rank 8" in comment
    prov = json.loads(meta["lorakiln.provenance"])
    assert [(i["file"], i["weight"]) for i in prov["inputs"]] == [("kafka.safetensors", 0.6), ("march.safetensors", 0.4)]
    assert all(len(i["sshs_model_hash"]) == 64 for i in prov["inputs"])
    assert meta["modelspec.title"] == "duo" and ISO.match(meta["modelspec.date"])


def test_disagreeing_inputs_leave_the_key_out_and_say_so(tmp_path, cli):
    a, b = _inputs(tmp_path, clip_b="1")
    code, text = cli("merge", a, b, "-o", tmp_path / "m.safetensors", "--rank", "2")
    assert code == 0, text
    assert "ss_clip_skip" not in read_metadata(tmp_path / "m.safetensors")
    assert "disagree on ss_clip_skip" in text
    assert "refactored by SVD to rank 2" in read_metadata(tmp_path / "m.safetensors")["ss_training_comment"]


def _nan_lora(tmp_path):
    sd = lora_sd(1, 4, 2.0)
    sd[f"{LIN}.lora_up.weight"][3, 1] = float("nan")
    sd[f"{LIN}.lora_down.weight"][0, 0] = float("inf")
    p = tmp_path / "broken.safetensors"
    write_lora(p, sd, {"ss_base_model_version": "sd_v1"})
    return p


def test_nan_input_is_named_not_a_traceback(tmp_path, cli):
    bad = _nan_lora(tmp_path)
    good = tmp_path / "good.safetensors"
    write_lora(good, lora_sd(2, 4, 2.0), {"ss_base_model_version": "sd_v1"})
    for args in (("merge", good, bad, "-o", tmp_path / "m.safetensors"),
                 ("resize", bad, "--rank", "2", "-o", tmp_path / "r.safetensors"),
                 ("lora", "convert", bad, tmp_path / "c.safetensors", "--target", "diffusers")):
        code, text = cli(*args)
        assert code == 1, text
        assert "Traceback" not in text and "LinAlgError" not in text
        assert "broken.safetensors" in text and "NaN/Inf" in text
        assert f"{LIN}.lora_up.weight" in text and f"{LIN}.lora_down.weight" in text and "2 tensor(s)" in text
    assert not (tmp_path / "m.safetensors").exists()


def test_info_says_a_file_holds_nan(tmp_path, cli):
    bad = _nan_lora(tmp_path)
    code, text = cli("info", bad)
    assert code == 0 and "BROKEN" in text and "2 tensor(s) hold NaN/Inf" in text
    code, text = cli("info", bad, "--json")
    d = json.loads(text)
    assert d["nonfinite"]["tensors"] == 2 and d["nonfinite"]["values"] == 2
    good = tmp_path / "good.safetensors"
    write_lora(good, lora_sd(2, 4, 2.0), {"ss_base_model_version": "sd_v1"})
    assert json.loads(cli("info", good, "--json")[1])["nonfinite"]["tensors"] == 0


def test_a_result_beyond_fp16_is_not_written(tmp_path, cli):
    a = tmp_path / "a.safetensors"
    big = {k: v * 1e5 if k.endswith("weight") else v for k, v in lora_sd(1, 4, 2.0).items()}  # fp32 factors
    write_lora(a, big, {"ss_base_model_version": "sd_v1"})
    code, text = cli("merge", f"{a}:100", "-o", tmp_path / "m.safetensors", "--dtype", "fp16")
    assert code == 1 and "NaN/Inf" in text and "--dtype" in text
    assert not (tmp_path / "m.safetensors").exists()


def test_extract_names_a_nan_weight(tmp_path, cli):
    comps, targets = components("tiny-sd15")
    base_sd = to_checkpoint(comps, "sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", base_sd)
    apply_in_model(targets, random_lora(targets, seed=1), 1.0)
    tuned_sd = to_checkpoint(comps, "sd15")
    key = next(k for k in tuned_sd if k.endswith("attn1.to_q.weight"))
    tuned_sd[key][0, 0] = float("nan")
    tuned = save_checkpoint(tmp_path / "tuned.safetensors", tuned_sd)
    code, text = cli("extract", tuned, base, "--rank", "2", "-o", tmp_path / "x.safetensors")
    assert code == 1 and "tuned.safetensors" in text and key in text and "NaN/Inf" in text


def test_bake_does_not_carry_the_base_hashes_and_names_itself(tmp_path):
    from lorakiln.services.merge import bake

    comps, targets = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"),
                           {"modelspec.title": "base model", "modelspec.hash_sha256": "0xdeadbeef",
                            "modelspec.date": "2023-01-01T00:00:00"})
    lora = save_lora(tmp_path / "l.safetensors", random_lora(targets, seed=1), "sd15")
    bake(base, [(lora, 1.0)], tmp_path / "baked.safetensors")
    meta = read_metadata(tmp_path / "baked.safetensors")
    assert "modelspec.hash_sha256" not in meta and meta["modelspec.title"] == "baked"
    assert ISO.match(meta["modelspec.date"])


def test_every_output_carries_modelspec_title_and_date(tmp_path, cli):
    a = tmp_path / "a.safetensors"
    write_lora(a, lora_sd(1, 4, 2.0), {"ss_base_model_version": "sd_v1", "modelspec.date": "2020-01-01T00:00:00"})
    for args, out in ((("resize", a, "--rank", "2"), "r.safetensors"),
                      (("merge", a), "m.safetensors"),
                      (("lora", "convert", a, tmp_path / "c.safetensors", "--target", "comfyui"), None)):
        target = tmp_path / (out or "c.safetensors")
        code, text = cli(*args, *(("-o", target) if out else ()))
        assert code == 0, text
        meta = read_metadata(target)
        assert meta["modelspec.title"] and ISO.match(meta["modelspec.date"]), (args, meta.get("modelspec.date"))


def test_training_and_dora_bake_metadata_carry_title_and_date():
    from lorakiln.train.dora_bake import baked_metadata
    from lorakiln.train.metadata import RunFacts, modelspec_identity

    facts = RunFacts(session_id=1, started_at=1_700_000_000.0, output_name="kafka_v1", resolution=(512, 512),
                     batches_per_epoch=1, max_train_steps=1, warmup_steps=0, optimizer="AdamW", mixed_precision="no",
                     clip_skip=2, base={}, trigger=["kafka_hsr"], dataset_hash="d", config_hash="c", run_id="r")
    ms = modelspec_identity(facts)
    assert ms["modelspec.title"] == "kafka_v1" and ms["modelspec.date"] == "2023-11-14T22:13:20+00:00"
    baked = baked_metadata({"ss_output_name": "kafka", "modelspec.date": "2020-01-01T00:00:00"}, 8)
    assert baked["modelspec.title"] == "kafka" and ISO.match(baked["modelspec.date"])
    assert baked["modelspec.date"] != "2020-01-01T00:00:00"
