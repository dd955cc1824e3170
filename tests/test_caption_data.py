"""Fixture datasets for the caption and export tests, shaped like the seeds' own examples (no tests here)."""

from __future__ import annotations

from pathlib import Path

from lorakiln.core.records import ImageRecord, TaggerScores

KAFKA_COMMON = ["1girl", "solo", "purple_hair", "long_hair", "purple_eyes", "sunglasses", "eyewear_on_head"]


def kafka_records(n: int = 8) -> list[ImageRecord]:
    """Seed 001: Kafka from Danbooru; hair and eye colour in every image, outfits vary."""
    out = []
    for i in range(n):
        general = KAFKA_COMMON + (["very_long_hair"] if i % 2 else []) + [
            ["jacket", "shirt", "gloves"], ["smile", "looking_at_viewer", "elbow_gloves", "bow"],
            ["ponytail", "tail", "hat"], ["speech_bubble", "english_text"],
        ][i % 4]
        if i == 0:
            general.append("hat")
        out.append(ImageRecord(
            id=f"danbooru-{100 + i}", source="danbooru", score=10 * (i + 1), rating="gsqe"[i % 4],
            created_at=f"{2016 + i}-05-01T12:00:00.000+09:00",
            tags={"general": general, "character": ["kafka_(honkai:_star_rail)"], "copyright": ["honkai:_star_rail"],
                  "artist": [f"artist_{i}"], "meta": ["highres", "signature"] if i % 2 else ["absurdres"]},
        ))
    return out


def retsuko_records(n: int = 6) -> list[ImageRecord]:
    """Seed 003: Retsuko from e621; species, body colour and markings are core, eye colour varies."""
    out = []
    for i in range(n):
        general = ["anthro", "female", "tan_body", "white_ears", "brown_inner_ear", "black_nose", "facial_markings",
                   "white_eyebrows", "eyelashes", "solo", ["brown_eyes", "black_eyes"][i % 2]]
        general += [["red_shirt", "crop_top", "pattern_shirt"], ["red_shirt", "crop_top"], ["smile", "standing"]][i % 3]
        out.append(ImageRecord(
            id=f"e621-{200 + i}", source="e621", score=50 + i, rating="s",
            tags={"general": general, "species": ["red_panda", "ailurid", "mammal"], "character": ["retsuko"],
                  "copyright": ["aggretsuko"], "meta": ["hi_res"]},
        ))
    return out


def zeta_records() -> list[ImageRecord]:
    """Seed 001 "Multiple Concepts": Zeta's outfits in their own subsets."""
    outfits = {
        "def": ["armor", "red_cape", "spear", "thighhighs"],
        "summer": ["bikini", "swimsuit", "flower_hair_ornament", "beach"],
        "dark": ["black_dress", "black_gloves", "choker"],
    }
    out = []
    for subset, tags in outfits.items():
        for i in range(3):
            out.append(ImageRecord(id=f"gelbooru-{subset}-{i}", source="gelbooru", subset=subset,
                                   tags={"general": ["1girl", "blonde_hair", "blue_eyes", "long_hair", *tags[: 2 + i % 3]]}))
    return out


def tagged_record(rid: str = "local-aaaa") -> ImageRecord:
    """A record with tagger scores only (no booru tags)."""
    return ImageRecord(id=rid, source="local", tagger=TaggerScores(
        model="wd-swinv2-v3", rating={"general": 0.9, "sensitive": 0.1},
        general={"1girl": 0.99, "long_hair": 0.8, "smile": 0.6, "hat": 0.4}, character={}))


def add_images(project, records: list[ImageRecord], size: tuple[int, int] = (48, 64)) -> None:
    """Write a small demo picture for each record into images/ and save the manifest."""
    from lorakiln.demo.images import Spec, make_image

    m = project.manifest()
    for i, r in enumerate(records):
        path = Path(project.images_dir) / f"{r.id}.png"
        make_image(Spec(seed=i, width=size[0], height=size[1])).save(path)
        r.file = project.rel(path)
        m.add(r)
    m.save()


def add_records(project, records: list[ImageRecord]) -> None:
    m = project.manifest()
    for r in records:
        m.add(r)
    m.save()
