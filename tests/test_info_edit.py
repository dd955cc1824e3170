"""kiln info --set / --unset refuses keys and values other tools would misread, changes nothing
when it refuses, and still lets a badly named key written elsewhere be removed."""

from __future__ import annotations

import pytest
from test_info import _file

from lorakiln.formats.lora_file import FormatError, edit_metadata, read_metadata, write_lora
from lorakiln.formats.lora_file import read_lora


@pytest.mark.parametrize("edit", ["bad key=1", "a\tb=1", "a\x01b=1", ".hidden=1", "ключ=1", "k" * 129 + "=1",
                                  "ss_tag_frequency=oops", "ss_dataset_dirs=[1]", "ss_network_args=3",
                                  "ss_network_dim=abc", "ss_network_alpha=nan", "lorakiln.provenance=x",
                                  "ss_output_name=a\x00b"])
def test_bad_set_is_refused_and_changes_nothing(tmp_path, cli, edit):
    p = _file(tmp_path)
    before = p.read_bytes()
    code, out = cli("info", p, "--set", edit)
    assert code == 1, out
    flat = " ".join(out.split())
    assert "kafka.safetensors" in flat and "nothing was changed" in flat and "Traceback" not in flat
    assert p.read_bytes() == before


@pytest.mark.parametrize("args", [("--unset", "sshs_legacy_hash"), ("--set", "modelspec.hash_sha256=0xab"),
                                  ("--unset", "sshs_model_hash")])
def test_the_hashes_cannot_be_edited(tmp_path, cli, args):
    p = _file(tmp_path)
    before = p.read_bytes()
    code, out = cli("info", p, *args)
    assert code == 1 and "computed by lorakiln" in out and p.read_bytes() == before


def test_every_problem_is_listed_at_once(tmp_path):
    p = _file(tmp_path)
    with pytest.raises(FormatError) as e:
        edit_metadata(p, {"a=b": "1", "": "x", "ss_clip_skip": "two"})
    msg = str(e.value)
    assert "'a=b'" in msg and "''" in msg and "ss_clip_skip must be a number" in msg


def test_good_edits_pass(tmp_path, cli):
    p = _file(tmp_path)
    code, out = cli("info", p, "--set", "modelspec.usage_hint=use <lora:kafka:0.8>\nat 0.8",
                    "--set", "ss_network_dim=Dynamic", "--set", "ss_clip_skip=2", "--set", "my-tool_v2.note=ok",
                    "--set", 'ss_tag_frequency={"1_x": {"a": 1}}', "--set", " spaced =trimmed")
    assert code == 0, out
    meta = read_metadata(p)
    assert meta["modelspec.usage_hint"].endswith("\nat 0.8") and meta["ss_network_dim"] == "Dynamic"
    assert meta["my-tool_v2.note"] == "ok" and meta["spaced"] == "trimmed"


def test_a_badly_named_key_from_elsewhere_can_be_removed(tmp_path, cli):
    p = tmp_path / "odd.safetensors"
    tensors, _ = read_lora(_file(tmp_path))
    write_lora(p, tensors, {"bad key": "1", "ss_output_name": "x"})
    code, out = cli("info", p, "--unset", "bad key")
    assert code == 0, out
    assert "bad key" not in read_metadata(p)
