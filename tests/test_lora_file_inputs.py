"""Hostile LoRA files and options: metadata JSON nested thousands of levels deep, absurd ranks,
folders and non-checkpoints given as files, files with no LoRA modules. Each gets a message
naming the file and the problem, never a traceback or a silent "exact"."""

from __future__ import annotations

import json
import struct

import pytest
from test_merge_core import lora_sd

from lorakiln.core.errors import KilnError
from lorakiln.formats.lora_file import check_metadata_edit, read_metadata, write_lora
from lorakiln.formats.meta_json import decode
from lorakiln.merge.combine import MAX_RANK, RankPolicy
from lorakiln.services import merge as svc

DEEP = "[" * 3000 + "]" * 3000
HUGE = "99999999999999999999999"


def _raw(path, header: dict, data: bytes = b""):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)
    return path


def _lora(tmp_path, name="a.safetensors", seed=1, **meta):
    p = tmp_path / name
    write_lora(p, lora_sd(seed, 4, 2.0, conv=None), {"ss_base_model_version": "sd_v1", **meta})
    return p


# -- item 2: deeply nested metadata JSON ------------------------------------------------------------

def test_info_shows_deep_metadata_as_unreadable_and_the_rest(tmp_path, cli):
    p = _raw(tmp_path / "deep3k.safetensors",
             {"__metadata__": {"ss_tag_frequency": DEEP}, "a.alpha": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}},
             b"\0" * 4)
    code, text = cli("info", p)
    assert code == 0, text
    assert "ss_tag_frequency: unreadable" in text and "nested too deeply" in text
    assert "AutoV3" in text


def test_info_of_a_real_lora_with_every_json_key_deep(tmp_path, cli):
    p = _lora(tmp_path, ss_tag_frequency=DEEP, ss_dataset_dirs=DEEP, ss_network_args=DEEP,
              **{"lorakiln.provenance": DEEP})
    code, text = cli("info", p)
    assert code == 0, text
    for key in ("ss_tag_frequency", "ss_dataset_dirs", "ss_network_args", "lorakiln.provenance"):
        assert f"{key}: unreadable" in text
    assert "modules: 1" in text and "ComfyUI: exact" in text
    code, text = cli("info", p, "--json")
    assert code == 0 and json.loads(text)["unreadable"]["ss_tag_frequency"].startswith("its JSON is nested")


def test_json_nested_below_the_recursion_limit_is_still_refused():
    # 900 levels decode, but printing or re-encoding them recurses again: refused at 64
    assert decode("[" * 900 + "]" * 900)[1] and decode('{"a": {"b": [1]}}') == ({"a": {"b": [1]}}, None)
    assert "cannot be read" in decode('{"a": 1' + "0" * 5000 + "}")[1]


def test_merge_convert_and_resize_ignore_unreadable_metadata(tmp_path, cli):
    a = _lora(tmp_path, "a.safetensors", 1, ss_tag_frequency=DEEP, ss_network_args=DEEP,
              **{"lorakiln.provenance": DEEP})
    b = _lora(tmp_path, "b.safetensors", 2, ss_tag_frequency=json.dumps({"5_b": {"blue": 3}}))
    code, text = cli("merge", a, b, "-o", tmp_path / "m.safetensors")
    assert code == 0, text
    assert json.loads(read_metadata(tmp_path / "m.safetensors")["ss_tag_frequency"]) == {"b/5_b": {"blue": 3}}
    code, text = cli("lora", "convert", a, tmp_path / "c.safetensors", "--target", "diffusers")
    assert code == 0, text
    code, text = cli("resize", a, "--rank", "2", "-o", tmp_path / "r.safetensors")
    assert code == 0, text
    code, text = cli("resize", a, "--rank", "2", "-o", tmp_path / "r.safetensors")  # old output's provenance read
    assert code == 0, text


def test_setting_deep_json_metadata_is_refused_with_why():
    why = check_metadata_edit("ss_tag_frequency", DEEP)
    assert why and "nested too deeply" in why


def test_a_header_nested_too_deeply_is_a_format_error(tmp_path, cli):
    p = tmp_path / "hdr.safetensors"
    h = ('{"x": ' + DEEP + "}").encode()
    p.write_bytes(struct.pack("<Q", len(h)) + h)
    code, text = cli("info", p)
    assert code == 1 and "hdr.safetensors" in text and "nested too deeply" in text


# -- item 8: absurd ranks -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("merge", "{a}", "-o", "{o}", "--rank", HUGE),
                                  ("merge", "{a}", "-o", "{o}", "--conv-rank", HUGE),
                                  ("resize", "{a}", "--rank", HUGE, "-o", "{o}"),
                                  ("resize", "{a}", "--rank", str(MAX_RANK + 1), "-o", "{o}"),
                                  ("lora", "convert", "{a}", "{o}", "--target", "comfyui", "--rank", HUGE),
                                  ("lora", "keys", "--dim", HUGE, "--tensors")])
def test_ranks_beyond_the_bound_are_refused_at_the_cli(tmp_path, cli, args):
    a, o = _lora(tmp_path), tmp_path / "o.safetensors"
    code, text = cli(*[s.format(a=a, o=o) for s in args])
    assert code != 0 and str(MAX_RANK) in text, text
    assert not o.exists()


def test_ranks_beyond_the_bound_are_refused_by_the_services(tmp_path):
    a = _lora(tmp_path)
    with pytest.raises(KilnError, match=str(MAX_RANK)):
        RankPolicy(rank=10**23)
    with pytest.raises(KilnError, match=str(MAX_RANK)):
        RankPolicy(conv_rank=MAX_RANK + 1)
    from lorakiln.services.convert import convert

    with pytest.raises(KilnError, match=str(MAX_RANK)):
        convert(a, tmp_path / "c.safetensors", "comfyui", rank=10**23)


def test_a_rank_above_every_layer_is_written_as_exact(tmp_path, cli):
    a, b = _lora(tmp_path, "a.safetensors", 1), _lora(tmp_path, "b.safetensors", 2)
    code, text = cli("resize", a, "--rank", str(MAX_RANK), "-o", tmp_path / "r.safetensors")
    assert code == 0, text
    comment = read_metadata(tmp_path / "r.safetensors")["ss_training_comment"]
    assert str(MAX_RANK) not in comment and "exact" in comment
    code, text = cli("merge", a, b, "--rank", str(MAX_RANK), "-o", tmp_path / "m.safetensors")
    assert code == 0, text
    comment = read_metadata(tmp_path / "m.safetensors")["ss_training_comment"]
    assert f"rank {MAX_RANK}" not in comment and "exact" in comment


# -- item 9: errors name the input --------------------------------------------------------------

def test_a_lora_given_as_base_checkpoint_is_named(tmp_path, cli):
    a, l2 = _lora(tmp_path, "a.safetensors", 1), _lora(tmp_path, "L2.safetensors", 2)
    for args in (("lora", "convert", a, tmp_path / "o.safetensors", "--target", "comfyui", "--base", l2),
                 ("merge", a, "--into", l2, "-o", tmp_path / "o.safetensors"),
                 ("merge", a, "--base", l2, "-o", tmp_path / "o.safetensors"),
                 ("extract", l2, l2, "-o", tmp_path / "o.safetensors")):
        code, text = cli(*args)
        assert code == 1 and "L2.safetensors" in text.replace("\n", "") and "not a single-file" in text, text


def test_a_folder_is_called_a_folder(tmp_path, cli):
    d = tmp_path / "some_dir.safetensors"
    d.mkdir()
    a = _lora(tmp_path)
    for args in (("info", d), ("merge", a, d, "-o", tmp_path / "o.safetensors"), ("resize", d, "--rank", "2"),
                 ("lora", "convert", d, tmp_path / "o.safetensors", "--target", "comfyui")):
        code, text = cli(*args)
        assert code == 1 and "some_dir.safetensors" in text and "is a folder, not a file" in text, text
    for args in (("merge", a, "-o", d), ("resize", a, "--rank", "2", "-o", d),
                 ("lora", "convert", a, d, "--target", "comfyui")):
        code, text = cli(*args)
        assert code == 1 and "some_dir.safetensors: is a folder, not a file" in text.replace("\n", ""), text
    code, text = cli("info", tmp_path / "missing.safetensors")
    assert code == 1 and "no such file" in text


# -- item 10: no LoRA modules -------------------------------------------------------------------------

def test_info_of_a_file_without_modules_says_nothing_applies(tmp_path, cli):
    p = _raw(tmp_path / "empty_lora.safetensors", {"__metadata__": {"ss_network_dim": "4"}})
    code, text = cli("info", p)
    assert code == 0, text
    assert "no LoRA modules: nothing to apply" in text and "exact" not in text
    assert svc.info(p)["loaders"] == {}
    from lorakiln.merge.compat import loaders_line

    assert loaders_line({}) == "No LoRA modules: nothing to apply."


def test_merge_resize_convert_refuse_a_file_without_modules(tmp_path, cli):
    p = _raw(tmp_path / "empty_lora.safetensors", {"__metadata__": {"ss_network_dim": "4"}})
    for args in (("merge", p, "-o", tmp_path / "o.safetensors"), ("resize", p, "--rank", "2"),
                 ("lora", "convert", p, tmp_path / "o.safetensors", "--target", "comfyui")):
        code, text = cli(*args)
        assert code == 1 and "empty_lora.safetensors" in text and "nothing to apply" in text, text
