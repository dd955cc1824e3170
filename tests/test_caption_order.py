"""Order styles per base model and the special tags they add."""

import pytest

from lorakiln.captions.order import (
    ORDER_STYLES, OrderOptions, TagFacts, normalize_rating, order_tags, pony_score_tags, quality_tag,
    score_percentiles, year_of, year_tag,
)
from lorakiln.core.errors import KilnError

CATS = {"kafka_(honkai:_star_rail)": "character", "honkai:_star_rail": "copyright", "artist_x": "artist",
        "highres": "meta", "red_panda": "species"}
TAGS = ["smile", "honkai:_star_rail", "kafka_hsr", "long_hair", "kafka_(honkai:_star_rail)", "1girl", "highres"]


def test_animagine_count_character_series_then_the_rest():
    tags, head = order_tags(TAGS, "animagine", TagFacts(categories=CATS), OrderOptions(keep_first=("kafka_hsr",)))
    assert tags == ["1girl", "kafka_hsr", "kafka_(honkai:_star_rail)", "honkai:_star_rail", "smile", "long_hair", "highres"]
    assert head == 4


def test_animagine_special_tags_from_the_records_data():
    facts = TagFacts(categories=CATS, rating="e", year=2022, percentile=0.97, aesthetic=0.5)
    opts = OrderOptions(keep_first=("kafka_hsr",), quality_tags=True, rating_tags=True, year_tags=True, aesthetic_tags=True)
    tags, _ = order_tags(TAGS, "animagine", facts, opts)
    assert tags[-5:] == ["masterpiece", "explicit", "nsfw", "newest", "aesthetic"]
    again, _ = order_tags(tags, "animagine", facts, opts)  # ordering twice never repeats special tags
    assert again == tags
    plain, _ = order_tags(tags, "animagine", facts, OrderOptions(keep_first=("kafka_hsr",)))
    assert "masterpiece" not in plain and "nsfw" not in plain


def test_animagine_tables():
    assert [quality_tag(p) for p in (0.96, 0.9, 0.8, 0.6, 0.3, 0.2, 0.05)] == [
        "masterpiece", "best_quality", "great_quality", "good_quality", "normal_quality", "low_quality", "worst_quality"]
    assert [year_tag(y) for y in (2024, 2021, 2020, 2018, 2017, 2015, 2014, 2011, 2010, 2005)] == [
        "newest", "newest", "recent", "recent", "mid", "mid", "early", "early", "oldest", "oldest"]


def test_pony_score_source_rating_first():
    facts = TagFacts(categories=CATS, rating="g", percentile=0.95, site="danbooru")
    opts = OrderOptions(keep_first=("kafka_hsr",), rating_tags=True)
    tags, head = order_tags(TAGS, "pony", facts, opts)
    assert tags[:9] == ["score_9", "score_8_up", "score_7_up", "score_6_up", "score_5_up", "score_4_up",
                        "source_anime", "rating_safe", "kafka_hsr"]
    assert head == 9
    assert tags[9:12] == ["1girl", "kafka_(honkai:_star_rail)", "honkai:_star_rail"]


def test_pony_special_tags_keep_their_underscores_when_tags_are_written_with_spaces():
    from lorakiln.config.caption import CaptionConfig
    from lorakiln.services.caption import caption_text

    tags, _ = order_tags(TAGS, "pony", TagFacts(categories=CATS, rating="e", percentile=0.7),
                         OrderOptions(keep_first=("kafka_hsr",), rating_tags=True))
    text = caption_text(tags, CaptionConfig(underscores=False), ["kafka_hsr"])
    assert text == ("score_7_up, score_6_up, score_5_up, score_4_up, source_anime, rating_explicit, kafka_hsr, "
                    "1girl, kafka \\(honkai: star rail\\), honkai: star rail, smile, long hair, highres")


def test_pony_score_levels_and_furry_source():
    assert pony_score_tags(0.8) == ["score_8_up", "score_7_up", "score_6_up", "score_5_up", "score_4_up"]
    assert pony_score_tags(0.5) == ["score_6_up", "score_5_up", "score_4_up"]
    assert pony_score_tags(0.1) == []
    tags, _ = order_tags(["anthro"], "pony", TagFacts(site="e621", rating="e"), OrderOptions(rating_tags=True))
    assert tags == ["source_furry", "rating_explicit", "anthro"]
    tags, _ = order_tags(["anthro"], "pony", TagFacts(), OrderOptions(source_tag="none"))
    assert tags == ["anthro"]


def test_switching_style_removes_the_other_styles_special_tags():
    pony, _ = order_tags(TAGS, "pony", TagFacts(percentile=0.95), OrderOptions())
    back, _ = order_tags(pony, "animagine", TagFacts(categories=CATS), OrderOptions())
    assert not [t for t in back if t.startswith(("score_", "source_"))]


def test_confidence_order_is_stable_and_trigger_first():
    facts = TagFacts(scores={"smile": 0.5, "long_hair": 0.9, "1girl": 0.99})
    tags, head = order_tags(["smile", "long_hair", "kafka_hsr", "solo", "1girl"], "confidence", facts,
                            OrderOptions(keep_first=("kafka_hsr",)))
    assert tags == ["kafka_hsr", "solo", "1girl", "long_hair", "smile"]  # solo: booru tag, 1.0
    assert head == 1


def test_e621_category_order_like_pikaft():
    cats = {"retsuko": "character", "red_panda": "species", "artist_x": "artist", "hi_res": "meta",
            "aggretsuko": "copyright"}
    tags, head = order_tags(["hi_res", "smile", "artist_x", "red_panda", "retsuko", "roxanneshirt", "aggretsuko"],
                            "e621", TagFacts(categories=cats, rating="g"),
                            OrderOptions(keep_first=("retsuko_lora",), rating_tags=True))
    assert tags == ["retsuko", "red_panda", "aggretsuko", "artist_x", "safe", "smile", "roxanneshirt", "hi_res"]
    assert head == 0


def test_unknown_style_is_a_clear_error():
    with pytest.raises(KilnError, match="unknown order style 'sdxl'; known: animagine, confidence, e621, pony"):
        order_tags(["a"], "sdxl", TagFacts(), OrderOptions())
    assert set(ORDER_STYLES.names()) == {"animagine", "pony", "confidence", "e621"}


def test_percentiles_ratings_years():
    p = score_percentiles({"a": 10, "b": 20, "c": 20, "d": 40, "e": None})
    assert p == {"a": 0.125, "b": 0.5, "c": 0.5, "d": 0.875}
    assert normalize_rating("s", "danbooru") == "s" and normalize_rating("s", "e621") == "g"
    assert normalize_rating("explicit") == "e" and normalize_rating("general") == "g" and normalize_rating(None) is None
    assert year_of("2019-03-04T01:02:03.000-04:00") == 2019 and year_of(None) is None
