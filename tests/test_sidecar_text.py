"""Caption sidecar files: every encoding users' tools save is read, nothing damaged gets through."""

import os
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorakiln.captions.sidecar_text import (
    MAX_CAPTION_BYTES,
    clean_caption_text,
    decode_caption_bytes,
    find_sidecar,
    read_image_caption,
    read_sidecar,
)
from lorakiln.core.errors import ItemError

from bad_files import pipe_guard  # noqa: F401  (a fixture)

TAGS = "kafka_hsr, 初音ミク, long_hair, 青い目"


@pytest.mark.parametrize("codec, expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8"),
    ("utf-16", "utf-16-le"), ("utf-32", "utf-32-le"),  # Python writes the BOM little-endian
    ("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be"),  # no BOM: told by the NUL bytes
    ("shift_jis", "cp932"), ("euc_jp", "euc_jp"), ("gb18030", "gb18030"),
])
def test_japanese_captions_in_every_common_encoding_read_the_same(codec, expected):
    text, enc = decode_caption_bytes(TAGS.encode(codec))
    assert (text, enc) == (TAGS, expected)


@pytest.mark.parametrize("data", [
    b"\xfe\xff" + TAGS.encode("utf-16-be"), b"\x00\x00\xfe\xff" + TAGS.encode("utf-32-be"),
])
def test_big_endian_byte_order_marks(data):
    assert decode_caption_bytes(data)[0] == TAGS


@pytest.mark.parametrize("text, codec", [
    ("kafka, café, naïve", "cp1252"), ("Zürich, straße, smile", "cp1252"), ("café", "cp1252"),
    ("девушка, длинные волосы", "cp1251"),
])
def test_legacy_single_byte_captions(text, codec):
    assert decode_caption_bytes(text.encode(codec)) == (text, codec)


@pytest.mark.parametrize("data, words", [
    (b"kafka, \x00\x01\x02\xff\xfe\x80\x90", "NUL"),  # a stray NUL is not UTF-16
    (b"\x00\x01binary", "NUL"),  # NULs where UTF-16 would have them, but control characters
    (bytes(range(128, 256)) * 4, "no common encoding"),
    (b"\xff\xfe" + b"\x00\xd8", "utf-16-le"),  # a BOM, then a lone surrogate
])
def test_undecodable_bytes_are_refused_with_a_reason(data, words):
    with pytest.raises(ValueError, match=words):
        decode_caption_bytes(data)


def test_control_characters_are_removed_and_damage_refused():
    assert clean_caption_text("a,\tb\r\nc\x1b[0m,\x07d\x7f\u200b\ufeff") == ("a, b\nc[0m,d", 5)
    for bad in ("kafka\x00smile", "kafka, sm\ufffdle"):
        with pytest.raises(ValueError):
            clean_caption_text(bad)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_give_clean_text_or_a_reason(data):
    try:
        text, _ = decode_caption_bytes(data)
        text, _ = clean_caption_text(text)
    except ValueError as e:
        assert str(e)
        return
    assert "\x00" not in text and "\ufffd" not in text
    assert all(ch == "\n" or unicodedata.category(ch) != "Cc" for ch in text)


def test_read_sidecar_names_what_it_did(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(TAGS.encode("utf-16"))
    side = read_sidecar(p)
    assert (side.text, side.encoding) == (TAGS, "utf-16-le") and "utf-16-le" in side.note
    p.write_text("kafka, smile\n", encoding="utf-8")
    assert read_sidecar(p).note is None


def test_files_that_are_not_captions_are_refused(tmp_path, pipe_guard):
    (tmp_path / "dir.txt").mkdir()
    (tmp_path / "big.txt").write_bytes(b"a, " * (MAX_CAPTION_BYTES // 3 + 1))
    (tmp_path / "broken.txt").symlink_to("gone.txt")
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    pipe_guard(tmp_path / "pipe.txt")
    expect = {"dir": "a folder", "big": "more than", "broken": "missing", "loop": "loop", "pipe": "not a regular file"}
    for stem, words in expect.items():
        with pytest.raises(ItemError, match=words) as e:
            read_sidecar(tmp_path / f"{stem}.txt")
        assert e.value.item.endswith(f"{stem}.txt")


def test_a_broken_caption_beside_an_image_is_found_not_skipped(tmp_path):
    img = tmp_path / "a.png"
    (tmp_path / "a.txt").symlink_to("gone.txt")
    (tmp_path / "a.png.caption").write_text("later")
    assert find_sidecar(img, [".txt", ".caption"], full_name=True) == tmp_path / "a.txt"
    with pytest.raises(ItemError, match="missing"):
        read_image_caption(img, [".txt"])
    assert read_image_caption(img, [".caption"], full_name=True).text == "later"
    assert read_image_caption(img, [".caption"]) is None


def test_non_utf8_caption_file_name_is_shown_visibly(tmp_path):
    raw = os.fsencode(tmp_path) + b"/\xff.txt"
    with open(raw, "wb") as f:
        f.write(b"\x00\x01binary")
    with pytest.raises(ItemError) as e:
        read_sidecar(os.fsdecode(raw))
    assert e.value.item.endswith("\\xff.txt")
    e.value.item.encode("utf-8")  # printable: no lone surrogates
