"""Tag list <-> caption text: separators, underscores/spaces, A1111 escaping."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lorakiln.captions.model import (
    escape, format_caption, normalize_tag, parse_caption, render_tag, tag_key, unescape, verbatim_map,
)


def test_escape_once_for_a1111():
    assert render_tag("kafka_(honkai:_star_rail)") == r"kafka \(honkai: star rail\)"
    assert render_tag("kafka_(honkai:_star_rail)", underscores=True) == r"kafka_\(honkai:_star_rail\)"
    assert render_tag("kafka_(honkai:_star_rail)", escape_parens=False) == "kafka (honkai: star rail)"


def test_already_escaped_tag_is_not_escaped_twice():
    typed = r"kafka \(honkai: star rail\)"
    assert normalize_tag(typed) == "kafka_(honkai:_star_rail)"
    assert format_caption(parse_caption(typed)) == typed
    assert format_caption(parse_caption(format_caption(parse_caption(typed)))) == typed


def test_parse_splits_commas_and_lines_and_dedupes():
    text = "kafka_hsr, 1girl,long hair\nlong_hair ,  smile,,  "
    assert parse_caption(text) == ["kafka_hsr", "1girl", "long_hair", "smile"]


def test_backslash_and_brackets():
    assert escape(r"\m/") == r"\\m/"
    assert unescape(r"\\m/") == r"\m/"
    assert unescape(r"a\b") == r"a\b"  # a lone backslash stays
    assert format_caption(["[tag]"]) == r"\[tag\]"


def test_kaomoji_keep_their_underscore():
    assert format_caption(["^_^", ">_<", "long_hair"]) == "^_^, >_<, long hair"
    assert parse_caption("^_^, long  hair, very__long_hair") == ["^_^", "long_hair", "very_long_hair"]


def test_trigger_words_are_written_verbatim():
    v = verbatim_map(["kafka_hsr", "kie rose"])
    text = format_caption(["kafka_hsr", "kie_rose", "long_hair"], verbatim=v)
    assert text == "kafka_hsr, kie rose, long hair"
    assert parse_caption(text) == ["kafka_hsr", "kie_rose", "long_hair"]


def test_keys_ignore_case_spaces_and_escapes():
    assert tag_key(r"Kafka \(Honkai: Star Rail\)") == tag_key("kafka_(honkai:_star_rail)")


_TAG_CHARS = st.characters(blacklist_characters=",\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
_tag = st.text(_TAG_CHARS, min_size=1, max_size=24).map(normalize_tag).filter(lambda t: t.strip("_") == t and t != "")


@settings(max_examples=300, deadline=None)
@given(st.lists(_tag, max_size=12), st.booleans(), st.booleans())
def test_round_trip_any_tags(tags, underscores, esc):
    tags = [t for i, t in enumerate(tags) if tag_key(t) not in {tag_key(u) for u in tags[:i]}]
    text = format_caption(tags, underscores=underscores, escape_parens=True, separator=", ")
    assert parse_caption(text) == tags
    if not esc:
        return
    # escaping never compounds: parse -> format is a fixed point after one step
    assert format_caption(parse_caption(text), underscores=underscores) == text
