"""The tags of a close-up crop: its parent's tags, less what the crop cuts away, with its framing.

A portrait shows no legs or shoes, an upper-body crop no skirt, a cowboy shot no feet; a booru
would not tag what a picture does not show (the toy world's posts follow the same rule), and a
caption that names shoes the picture lacks teaches the trigger to stand for them. Which tags
belong below a cut is decided by the body region a tag names: explicit lists plus suffixes
(`*_skirt`, `*_boots`, ...), in Danbooru spelling. Tags of no known region are kept: dropping a
tag needs a reason, keeping one does not.
"""

from __future__ import annotations

from lorakiln.captions.model import tag_key

FRAMING_TAGS = frozenset({"full_body", "cowboy_shot", "upper_body", "portrait", "lower_body", "close-up",
                          "feet_out_of_frame", "head_out_of_frame"})

# regions below the waist, by how far down they are
FEET = frozenset({"shoes", "boots", "sandals", "barefoot", "high_heels", "sneakers", "loafers", "slippers",
                  "socks", "kneehighs", "footwear", "mary_janes", "geta", "zouri", "toes", "feet", "soles"})
FEET_SUFFIXES = ("_footwear", "_shoes", "_boots", "_socks", "_sandals", "_kneehighs", "_high_heels")
LEGS = frozenset({"skirt", "miniskirt", "pleated_skirt", "long_skirt", "shorts", "short_shorts", "pants",
                  "jeans", "thighhighs", "pantyhose", "legwear", "bare_legs", "thighs", "knees", "zettai_ryouiki",
                  "garter_straps", "legs", "thigh_strap", "denim_shorts", "bike_shorts"})
LEGS_SUFFIXES = ("_skirt", "_shorts", "_pants", "_thighhighs", "_pantyhose", "_legwear", "_leggings")

# what each framing cuts away: (tags, suffixes)
CUT = {
    "portrait": (LEGS | FEET, LEGS_SUFFIXES + FEET_SUFFIXES),
    "upper_body": (LEGS | FEET, LEGS_SUFFIXES + FEET_SUFFIXES),
    "cowboy_shot": (FEET, FEET_SUFFIXES),
}


def cut_away(tag: str, framing: str) -> bool:
    """Whether a crop of this framing no longer shows what `tag` names."""
    names, suffixes = CUT[framing]
    key = tag_key(tag).replace(" ", "_")
    return key in names or key.endswith(suffixes)


def crop_tags(tags: list[str], framing: str) -> tuple[list[str], list[str]]:
    """(the crop's tags, the parent's tags it dropped). The framing tag replaces the parent's."""
    if framing not in CUT:
        raise ValueError(f"unknown framing {framing!r}: one of {', '.join(CUT)}")
    kept, dropped = [], []
    for tag in tags:
        key = tag_key(tag).replace(" ", "_")
        (dropped if key in FRAMING_TAGS or cut_away(tag, framing) else kept).append(tag)
    return [*kept, framing], dropped
