"""initial_tags / tag_scores / tag_categories and how tagger scores are stored in a record."""

from lorakiln.config.tag import TagConfig
from lorakiln.core.records import ImageRecord, TaggerScores
from lorakiln.tagging.merge import (
    activate,
    has_scores,
    initial_tags,
    store_scores,
    tag_categories,
    tag_scores,
    tagger_rating,
)


def _record(**kw) -> ImageRecord:
    return ImageRecord(
        id="danbooru-1", source="danbooru",
        tags={"general": ["smile", "long hair", "rating:safe"], "artist": ["some_artist"],
              "character": ["kafka_(honkai:_star_rail)"], "meta": ["highres"], "rating": ["safe"]},
        tagger=TaggerScores(
            model="wd-vit-v3",
            rating={"general": 0.8, "sensitive": 0.3, "questionable": 0.01, "explicit": 0.0},
            general={"long_hair": 0.95, "jacket": 0.6, "gloves": 0.4, "hat": 0.3, "sky": 0.06},
            character={"kafka_(honkai:_star_rail)": 0.97, "himeko_(honkai:_star_rail)": 0.5},
        ), **kw)


def test_union_orders_by_confidence_with_booru_tags_first_in_category_order():
    scores = tag_scores(_record(), TagConfig())
    assert list(scores) == [
        "kafka_(honkai:_star_rail)", "some_artist", "smile", "long hair", "highres",  # booru, 1.0
        "jacket", "gloves",  # tagger, >= 0.35; long_hair is the booru 'long hair'; himeko < 0.85
    ]
    assert scores["smile"] == 1.0 and scores["jacket"] == 0.6
    assert initial_tags(_record(), TagConfig()) == list(scores)


def test_rating_pseudo_tags_and_dropped_categories_never_appear():
    tags = initial_tags(_record(), TagConfig())
    assert "rating:safe" not in tags and "safe" not in tags
    tags = initial_tags(_record(), TagConfig(drop_categories=["rating", "artist", "meta"]))
    assert "some_artist" not in tags and "highres" not in tags and "smile" in tags


def test_booru_only_and_tagger_only_policies():
    booru = initial_tags(_record(), TagConfig(merge="booru"))
    assert booru == ["kafka_(honkai:_star_rail)", "some_artist", "smile", "long hair", "highres"]
    tagger = tag_scores(_record(), TagConfig(merge="tagger"))
    assert tagger == {"kafka_(honkai:_star_rail)": 0.97, "long_hair": 0.95, "jacket": 0.6, "gloves": 0.4}


def test_thresholds_apply_to_stored_scores():
    rec = _record()
    assert "gloves" not in initial_tags(rec, TagConfig(merge="tagger", threshold=0.5))
    assert "hat" in initial_tags(rec, TagConfig(merge="tagger", threshold=0.25))
    assert "himeko_(honkai:_star_rail)" in initial_tags(rec, TagConfig(merge="tagger", character_threshold=0.5))
    # MCut: general gap 0.95 -> 0.6 is the largest, so only long_hair
    assert initial_tags(rec, TagConfig(merge="tagger", mcut=True)) == ["kafka_(honkai:_star_rail)", "long_hair"]
    assert initial_tags(rec, TagConfig(merge="tagger", threshold="balanced")) == [
        "kafka_(honkai:_star_rail)", "long_hair", "jacket", "gloves", "hat"]  # wd-vit-v3: 0.2614


def test_records_without_tagger_scores_or_booru_tags():
    bare = ImageRecord(id="local-1", source="local")
    assert initial_tags(bare, TagConfig()) == []
    booru_only = ImageRecord(id="local-2", source="local", tags={"general": ["solo"]})
    assert initial_tags(booru_only, TagConfig(merge="tagger")) == []
    assert initial_tags(booru_only, TagConfig()) == ["solo"]


def test_tag_categories_booru_first_then_tagger_with_stored_categories():
    rec = _record()
    store_scores(rec, TaggerScores(model="z3d", general={"canine": 0.9, "long_hair": 0.8, "sky": 0.4},
                                   character={"kilnfox": 0.9}),
                 {"canine": "species", "long_hair": "general", "sky": "general"})
    cats = tag_categories(rec)
    assert cats["kafka_(honkai:_star_rail)"] == "character" and cats["some_artist"] == "artist"
    assert cats["long hair"] == "general" and "long_hair" not in cats  # one entry per tag
    assert cats["canine"] == "species" and cats["kilnfox"] == "character" and cats["sky"] == "general"
    assert cats["rating:safe"] == "rating" and cats["safe"] == "rating"
    assert rec.extra["tagger_categories"] == {"canine": "species"}


def test_switching_models_keeps_each_models_scores():
    rec = _record()
    first = rec.tagger
    other = TaggerScores(model="z3d", general={"canine": 0.9}, character={})
    store_scores(rec, other, {"canine": "species"})
    assert rec.tagger.model == "z3d" and has_scores(rec, "wd-vit-v3") and has_scores(rec, "z3d")
    assert activate(rec, "wd-vit-v3") and rec.tagger == first
    assert "tagger_categories" not in rec.extra  # wd-vit-v3 had only general/character tags
    assert activate(rec, "z3d") and rec.tagger == other and tag_categories(rec)["canine"] == "species"
    assert not activate(rec, "never-ran") and not has_scores(rec, "never-ran")
    again = ImageRecord.model_validate_json(rec.model_dump_json())  # survives the manifest
    assert activate(again, "wd-vit-v3") and again.tagger == first


def test_tagger_rating_is_the_most_likely_label():
    assert tagger_rating(_record()) == "general"
    assert tagger_rating(ImageRecord(id="x", source="local")) is None
