"""LoRA file I/O and hashes, checked against bytes built and hashed independently here."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import load_file

from lorakiln.formats.lora_file import (
    FormatError,
    autov2,
    edit_metadata,
    read_lora,
    read_metadata,
    tensor_hash,
    write_lora,
)

EMPTY_SHA8 = hashlib.sha256(b"").hexdigest()[:8]


def _hand_file(path, tensors: dict[str, list[float]], metadata: dict[str, str]) -> bytes:
    """A safetensors file built byte by byte (float32, 1-d); returns its data section."""
    header, data = {"__metadata__": metadata}, b""
    for name, values in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return data


def test_known_answer_hashes_of_a_hand_built_file(tmp_path):
    p = tmp_path / "hand.safetensors"
    data = _hand_file(p, {"a.lora_down.weight": [1.0, 2.0, 3.0], "a.alpha": [4.0]}, {"ss_network_dim": "1"})
    whole = p.read_bytes()
    assert tensor_hash(p) == hashlib.sha256(data).hexdigest()
    assert autov2(p) == hashlib.sha256(whole).hexdigest()[:10]
    tensors, meta = read_lora(p)
    assert meta == {"ss_network_dim": "1"}
    assert tensors["a.lora_down.weight"].tolist() == [1.0, 2.0, 3.0]
    assert read_metadata(p) == {"ss_network_dim": "1"}


def test_write_lora_adds_kohya_hashes(tmp_path):
    p = tmp_path / "w.safetensors"
    t = {"b": torch.tensor([5.0, 6.0]), "a": torch.tensor([1.0, 2.0, 3.0])}
    write_lora(p, t, {"ss_network_dim": 4, "ss_x": {"k": 1}, "modelspec.title": "t"})
    meta = read_metadata(p)
    # safetensors orders same-dtype tensors by name: the data section is a then b
    data = struct.pack("<3f", 1, 2, 3) + struct.pack("<2f", 5, 6)
    assert meta["sshs_model_hash"] == hashlib.sha256(data).hexdigest() == tensor_hash(p)
    assert meta["modelspec.hash_sha256"] == "0x" + meta["sshs_model_hash"]
    assert meta["sshs_legacy_hash"] == EMPTY_SHA8  # kohya reads past the end of a < 1 MiB file
    assert meta["ss_network_dim"] == "4" and json.loads(meta["ss_x"]) == {"k": 1}


def test_legacy_hash_window_depends_on_ss_metadata_only(tmp_path):
    n = 300_000  # 1.2 MB: the 64 KiB window at 1 MiB lies inside the data
    w = torch.arange(n, dtype=torch.float32)
    ss = {"ss_network_dim": "8", "ss_output_name": "kafka"}
    write_lora(tmp_path / "a.safetensors", {"w": w}, {**ss, "modelspec.title": "x"})
    write_lora(tmp_path / "b.safetensors", {"w": w}, {**ss, "modelspec.title": "a much longer title" * 40})
    write_lora(tmp_path / "c.safetensors", {"w": w}, {**ss, "ss_extra": "y" * 123})
    ma, mb, mc = (read_metadata(tmp_path / f"{x}.safetensors") for x in "abc")
    # independent re-statement: header with only ss_* keys, compact JSON, space padding to 8
    head = {"__metadata__": ss, "w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}
    raw = json.dumps(head, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    blob = struct.pack("<Q", len(raw)) + raw + w.numpy().tobytes()
    assert ma["sshs_legacy_hash"] == hashlib.sha256(blob[0x100000:0x110000]).hexdigest()[:8]
    assert ma["sshs_legacy_hash"] == mb["sshs_legacy_hash"] != mc["sshs_legacy_hash"]
    assert ma["sshs_model_hash"] == mb["sshs_model_hash"] == mc["sshs_model_hash"]


def test_round_trip_and_dtype(tmp_path):
    p = tmp_path / "r.safetensors"
    t = {"x.lora_up.weight": torch.randn(4, 2), "x.alpha": torch.tensor(2.0), "ids": torch.tensor([1, 2])}
    write_lora(p, t, {"ss_v2": False}, dtype=torch.float16)
    back, meta = read_lora(p)
    assert back["x.lora_up.weight"].dtype == torch.float16 and back["ids"].dtype == torch.int64
    assert torch.equal(back["x.lora_up.weight"], t["x.lora_up.weight"].half())
    assert meta["ss_v2"] == "False"


def test_shared_memory_tensors_are_written(tmp_path):
    base = torch.randn(4, 4)
    write_lora(tmp_path / "s.safetensors", {"a": base, "b": base, "c": base[:2]}, {})
    back, _ = read_lora(tmp_path / "s.safetensors")
    assert torch.equal(back["c"], base[:2])


def test_edit_metadata_keeps_tensor_bytes(tmp_path):
    p = tmp_path / "e.safetensors"
    write_lora(p, {"w": torch.randn(3, 3)}, {"ss_output_name": "old", "modelspec.title": "old"})
    before_v3, before_v2 = tensor_hash(p), autov2(p)
    new = edit_metadata(p, {"modelspec.title": "new title", "ss_output_name": None, "note": "é"})
    assert tensor_hash(p) == before_v3 and autov2(p) != before_v2
    assert read_metadata(p) == new and new["modelspec.title"] == "new title" and "ss_output_name" not in new
    assert new["sshs_model_hash"] == before_v3
    assert load_file(str(p))["w"].shape == (3, 3)  # still loads with the safetensors library
    with pytest.raises(FormatError, match="computed by lorakiln"):
        edit_metadata(p, {"sshs_model_hash": "0"})


def test_pickles_are_refused_without_unpickling(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"w": torch.zeros(1)}, ckpt)
    with pytest.raises(FormatError, match="pickled"):
        read_lora(ckpt)
    disguised = tmp_path / "evil.safetensors"
    disguised.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(FormatError, match="never unpickles"):
        read_metadata(disguised)


@pytest.mark.parametrize("blob, message", [
    (b"abc", "shorter than the 8-byte"),
    (struct.pack("<Q", 1 << 40) + b"{}", "plausible header length"),
    (struct.pack("<Q", 50) + b"{}", "truncated"),
    (struct.pack("<Q", 8) + b"not json", "not JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
])
def test_malformed_files_give_clear_errors(tmp_path, blob, message):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(blob)
    with pytest.raises(FormatError, match=message) as e:
        read_lora(p)
    assert "bad.safetensors" in str(e.value)


def test_truncated_data_section(tmp_path):
    p = tmp_path / "t.safetensors"
    write_lora(p, {"w": torch.randn(64)}, {})
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(FormatError, match="truncated"):
        read_lora(p)
    with pytest.raises(FormatError, match="no such file"):
        read_lora(tmp_path / "missing.safetensors")
