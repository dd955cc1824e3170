"""A1111 prompt syntax: <lora:> tags, Prompt S/R, axis values, emphasis; and the infotext round trip."""

import pytest
from PIL import Image

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.infotext import (
    format_infotext,
    lora_hashes_value,
    parse_infotext,
    png_bytes,
    read_png_infotext,
    sampler_key,
    sampler_label,
)
from lorakiln.evaluate.prompts import (
    LoraRef,
    extract_loras,
    float_values,
    int_values,
    parse_attention,
    prompt_sr,
    split_values,
)


def test_extract_loras_all_spellings():
    text, refs = extract_loras("<lora:kafka-000010:0.8>, 1girl, <lora:x:0.5:1>, solo <lyco:y:te=0.3:unet=0.7>, "
                               "<lora:plain>, <hypernet:z:1>")
    assert refs == [LoraRef("kafka-000010", 0.8, 0.8), LoraRef("x", 0.5, 1.0), LoraRef("y", 0.3, 0.7),
                    LoraRef("plain", 1.0, 1.0)]
    assert text == "1girl, solo, <hypernet:z:1>"  # other extra networks are left alone
    assert LoraRef("a", 0.5, 0.5).tag() == "<lora:a:0.5>" and LoraRef("a", 0.5, 1).tag() == "<lora:a:0.5:1>"


def test_extract_loras_bad_weight_is_clear():
    with pytest.raises(KilnError, match="not a number"):
        extract_loras("<lora:kafka:strong>")


def test_prompt_sr_replaces_everywhere_and_requires_a_hit():
    assert prompt_sr("a red, red hat", "red eyes", "red", "blue") == ("a blue, blue hat", "blue eyes")
    assert prompt_sr("<lora:k-000010:1>", "", "-000010", "-000008") == ("<lora:k-000008:1>", "")
    with pytest.raises(KilnError, match="neither the prompt nor the negative"):
        prompt_sr("a cat", "dog", "bird", "fish")


def test_axis_values_and_ranges():
    assert split_values('a, "b, c", d') == ["a", "b, c", "d"]
    assert int_values("1-5, 10-20 (+5), 8") == [1, 2, 3, 4, 5, 10, 15, 20, 8]
    assert int_values("10-4 (-3)") == [10, 7, 4]
    assert float_values("0.5-1 [3], 1.2") == [0.5, 0.75, 1.0, 1.2]
    assert float_values("1-0 (-0.25)") == [1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(KilnError, match="never reaches"):
        int_values("1-5 (-1)")
    with pytest.raises(KilnError):
        float_values("abc")


def test_emphasis_rules():
    got = parse_attention(r"a (b) [c] (d:1.5) \(e\) ((f)) (g")
    assert got == [("a ", 1.0), ("b", pytest.approx(1.1)), (" ", 1.0), ("c", pytest.approx(1 / 1.1)),
                   (" ", 1.0), ("d", 1.5), (" (e) ", 1.0), ("f", pytest.approx(1.21)), (" ", 1.0),
                   ("g", pytest.approx(1.1))]
    assert parse_attention("(a:0.5) b)") == [("a", 0.5), (" b)", 1.0)]  # stray closer is text
    assert parse_attention("") == [("", 1.0)]


def test_sampler_names_both_ways():
    assert sampler_label("dpmpp_2m_karras") == "DPM++ 2M Karras"
    assert sampler_key("DPM++ 2M Karras") == "dpmpp_2m_karras"
    assert sampler_key("DPM++ 2M", "Karras") == "dpmpp_2m_karras"  # A1111 1.9+ "Schedule type"
    assert sampler_key("Euler a") == "euler_a" and sampler_key("k_euler_a") == "euler_a"
    with pytest.raises(KilnError, match="unknown sampler"):
        sampler_key("Magic 9000")


def test_infotext_round_trip_with_quoting():
    text = format_infotext("kafka, 1girl, <lora:kafka:0.8>\nsecond line", "lowres, bad hands",
                           {"Steps": 20, "Sampler": "DPM++ 2M Karras", "CFG scale": "7", "Seed": 123,
                            "Size": "512x768", "Model hash": None, "Model": "animagine: v3.1",
                            "Lora hashes": lora_hashes_value({"kaf:ka": "0123456789abcdef"}), "Version": "lorakiln 0"})
    assert "Model hash" not in text
    assert 'Lora hashes: "kafka: 0123456789ab"' in text and 'Model: "animagine: v3.1"' in text
    got = parse_infotext(text)
    assert got["Prompt"] == "kafka, 1girl, <lora:kafka:0.8>\nsecond line"
    assert got["Negative prompt"] == "lowres, bad hands"
    assert (got["Steps"], got["Sampler"], got["Seed"], got["Model"]) == ("20", "DPM++ 2M Karras", "123",
                                                                         "animagine: v3.1")
    assert (got["Size-1"], got["Size-2"]) == (512, 768)
    assert got["Lora hashes map"] == {"kafka": "0123456789ab"}


def test_png_chunk_is_readable(tmp_path):
    p = tmp_path / "a.png"
    p.write_bytes(png_bytes(Image.new("RGB", (8, 8)), "ünïcode prompt\nSteps: 1, Seed: 2, Size: 8x8"))
    assert read_png_infotext(p).startswith("ünïcode prompt")
    with Image.open(p) as im:
        assert im.info["parameters"].endswith("Size: 8x8")


def test_special_tags_of_an_order_style_are_never_the_outfit():
    """After `kiln caption order --style pony` every caption has score_9/source_anime/rating tags."""
    from lorakiln.evaluate.dataset_tags import outfit_tags

    shares = {"kilnchan": 1.0, "score_9": 1.0, "source_anime": 1.0, "rating_safe": 1.0, "red_capelet": 0.8,
              "coat": 0.6}
    assert outfit_tags(shares, ["kilnchan"]) == ["red_capelet", "coat"]


@pytest.mark.parametrize("weight", ["nan", "inf", "1e400", "1e40", "-101"])
def test_prompt_tag_weights_must_be_finite_and_in_range(weight):
    from lorakiln.core.errors import KilnError
    from lorakiln.evaluate.prompts import extract_loras

    with pytest.raises(KilnError, match=r"prompt tag <lora:x:.*weight"):
        extract_loras(f"1girl, <lora:x:{weight}>")
