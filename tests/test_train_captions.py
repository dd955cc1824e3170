import random
from collections import Counter

from lorakiln.config.train import SubsetOptions
from lorakiln.train.caption_proc import (
    expand_wildcards,
    is_static,
    join_affix,
    process_caption,
    tag_counts,
)

CAPTION = "kafka_hsr, 1girl, solo, long_hair, purple_eyes, coat, white_background"


def opts(**kw):
    base = dict(shuffle_caption=False, keep_tokens=0)
    base.update(kw)
    return SubsetOptions(**base)


def tags(s):
    return [t.strip() for t in s.split(",") if t.strip()]


def test_static_caption_is_unchanged():
    assert process_caption(CAPTION, opts(), random.Random(0)) == CAPTION


def test_shuffle_keeps_the_first_keep_tokens_tags():
    o = opts(shuffle_caption=True, keep_tokens=2)
    seen = set()
    for seed in range(30):
        out = tags(process_caption(CAPTION, o, random.Random(seed)))
        assert out[:2] == ["kafka_hsr", "1girl"]
        assert sorted(out) == sorted(tags(CAPTION))
        seen.add(tuple(out))
    assert len(seen) > 10  # really shuffled


def test_same_seed_same_caption():
    o = opts(shuffle_caption=True, keep_tokens=1, caption_tag_dropout_rate=0.3)
    a = process_caption(CAPTION, o, random.Random(7))
    b = process_caption(CAPTION, o, random.Random(7))
    assert a == b


def test_keep_tokens_separator_fixes_head_and_tail():
    cap = "kafka_hsr, 1girl ||| solo, long_hair, coat, smile ||| masterpiece, best quality"
    o = opts(shuffle_caption=True, keep_tokens_separator="|||", keep_tokens=5)
    for seed in range(20):
        out = tags(process_caption(cap, o, random.Random(seed)))
        assert out[:2] == ["kafka_hsr", "1girl"]
        assert out[-2:] == ["masterpiece", "best quality"]
        assert sorted(out[2:-2]) == ["coat", "long_hair", "smile", "solo"]
        assert "|||" not in ",".join(out)
    # the separator never reaches the model, even without shuffling
    assert "|||" not in process_caption(cap, opts(keep_tokens_separator="|||"), random.Random(0))


def test_tag_dropout_only_drops_unfixed_tags():
    o = opts(keep_tokens=1, caption_tag_dropout_rate=0.5)
    counts = Counter()
    for seed in range(200):
        out = tags(process_caption(CAPTION, o, random.Random(seed)))
        assert out[0] == "kafka_hsr"
        counts.update(out[1:])
    for t in tags(CAPTION)[1:]:
        assert 60 < counts[t] < 140  # about half of 200


def test_whole_caption_dropout_rate_and_every_n_epochs():
    o = opts(caption_dropout_rate=0.25)
    dropped = sum(process_caption(CAPTION, o, random.Random(s)) == "" for s in range(400))
    assert 70 < dropped < 130
    o = opts(caption_dropout_every_n_epochs=3)
    assert [process_caption(CAPTION, o, random.Random(0), epoch=e) == "" for e in range(1, 7)] == \
        [False, False, True, False, False, True]


def test_prefix_suffix_are_joined_with_the_separator_and_stay_fixed():
    o = opts(caption_prefix="kafka_hsr", caption_suffix="masterpiece", shuffle_caption=True, keep_tokens=1)
    out = tags(process_caption("1girl, solo", o, random.Random(3)))
    assert out[0] == "kafka_hsr" and set(out) == {"kafka_hsr", "1girl", "solo", "masterpiece"}
    assert join_affix("a,", "b, c", ", d") == "a, b, c, d"


def test_multiline_first_line_without_wildcards():
    assert process_caption("first, line\nsecond, line", opts(), random.Random(0)) == "first, line"


def test_wildcards_and_brace_escapes():
    rng = random.Random(0)
    outs = {expand_wildcards("1girl, {red|blue|green} dress", rng) for _ in range(50)}
    assert outs == {"1girl, red dress", "1girl, blue dress", "1girl, green dress"}
    assert expand_wildcards("a {{literal}} b", rng) == "a {literal} b"
    o = opts(enable_wildcard=True)
    lines = {process_caption("a, b\nc, {d|e}\n\n", o, random.Random(s)) for s in range(60)}
    assert lines == {"a, b", "c, d", "c, e"}


def test_secondary_separator_moves_as_one_tag():
    cap = "kafka_hsr, red shirt;;;blue jeans, smile, solo"
    o = opts(shuffle_caption=True, keep_tokens=1, secondary_separator=";;;")
    for seed in range(20):
        out = process_caption(cap, o, random.Random(seed))
        assert "red shirt, blue jeans" in out and ";;;" not in out


def test_static_detection_lists_reasons():
    assert is_static(opts()) == []
    assert set(is_static(opts(shuffle_caption=True, caption_tag_dropout_rate=0.1, enable_wildcard=True))) == {
        "shuffle_caption", "caption_tag_dropout_rate", "enable_wildcard"}


def test_tag_frequency_is_lower_cased_per_tag():
    c = tag_counts(["Kafka_HSR, 1girl, solo", "kafka_hsr, 1girl ||| smile"], keep_sep="|||")
    assert c == Counter({"kafka_hsr": 2, "1girl": 2, "solo": 1, "smile": 1})
