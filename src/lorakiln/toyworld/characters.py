"""The toy world's named characters: fixed hair style and colour, eye colour and skin, plus a
default outfit and accessories they usually wear (and can change).

Ten characters are for pretraining the world's base model, tagger and identity model; the
other four are held out: no pretraining picture shows them, so a LoRA that draws one of them has
learned it. `kie_(kiln)` is the demo character. Every held-out character is made of attribute
values that pretraining pictures show, in a combination they never show, and differs from every
other character in at least two fixed features.
"""

from __future__ import annotations

from dataclasses import dataclass

from lorakiln.toyworld import vocab


@dataclass(frozen=True)
class Character:
    name: str  # Danbooru spelling with a qualifier, e.g. kie_(kiln)
    hair_style: str
    hair_colour: str
    eye_colour: str
    skin: str
    outfit: str  # default outfit
    outfit_colour: str
    accessories: tuple[str, ...] = ()  # default accessories
    held_out: bool = False

    @property
    def fixed(self) -> tuple[str, str, str, str]:
        """The features every picture of the character shows."""
        return (self.hair_style, self.hair_colour, self.eye_colour, self.skin)

    def fixed_tags(self) -> list[str]:
        """The general tags of the fixed features (what pruning would fold into a trigger)."""
        return sorted({*vocab.HAIR_STYLES[self.hair_style], vocab.hair_colour_tag(self.hair_colour),
                       vocab.eye_colour_tag(self.eye_colour), *vocab.SKIN_TAGS[self.skin]})


_C = Character
CHARACTERS: tuple[Character, ...] = (
    # pretraining
    _C("akane_(kiln)", "long_hair", "red", "yellow", "light", "school_uniform", "blue"),
    _C("sora_(kiln)", "short_hair", "blue", "blue", "pale", "hoodie", "white", ("glasses",)),
    _C("midori_(kiln)", "ponytail", "green", "brown", "tan", "armor", "red"),
    _C("yuki_(kiln)", "twintails", "white", "red", "pale", "dress", "black", ("hair_ribbon",)),
    _C("hana_(kiln)", "twintails", "pink", "green", "light", "dress", "white"),
    _C("rin_(kiln)", "short_hair", "black", "purple", "light", "school_uniform", "black"),
    _C("mio_(kiln)", "long_hair", "blonde", "blue", "dark", "swimsuit", "red"),
    _C("kaede_(kiln)", "ponytail", "brown", "aqua", "light", "hoodie", "green", ("hat",)),
    _C("nagi_(kiln)", "long_hair", "purple", "pink", "tan", "armor", "white"),
    _C("ren_(kiln)", "short_hair", "orange", "green", "dark", "swimsuit", "blue", ("hairclip",)),
    # held out
    _C("kie_(kiln)", "ponytail", "orange", "purple", "light", "hoodie", "black", ("hairclip",), held_out=True),
    _C("tsubaki_(kiln)", "long_hair", "black", "red", "pale", "dress", "red", ("hat",), held_out=True),
    _C("hotaru_(kiln)", "twintails", "green", "yellow", "dark", "armor", "blue", held_out=True),
    _C("koharu_(kiln)", "short_hair", "pink", "blue", "tan", "school_uniform", "green", ("hair_ribbon",),
       held_out=True),
)

BY_NAME: dict[str, Character] = {c.name: c for c in CHARACTERS}
PRETRAIN: tuple[Character, ...] = tuple(c for c in CHARACTERS if not c.held_out)
HELD_OUT: tuple[Character, ...] = tuple(c for c in CHARACTERS if c.held_out)
DEMO = BY_NAME["kie_(kiln)"]


def character(name: str) -> Character:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown toy-world character {name!r}; known: {', '.join(BY_NAME)}") from None


def resolve(chars) -> tuple[Character, ...]:
    """Characters from names or Character objects (None: the pretraining set)."""
    if chars is None:
        return PRETRAIN
    return tuple(c if isinstance(c, Character) else character(c) for c in chars)
