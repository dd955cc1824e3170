"""The toy world's vocabulary: every attribute a figure or a scene can have, its colour or
shape parameter, and the Danbooru tags a booru post would carry for it.

Every tag here is spelled as on Danbooru (checked against a WD v3 tagger's selected_tags.csv,
see docs/toyworld.md). Colours are flat, saturated and far apart so that a tiny model can tell
them apart at 64x64.
"""

from __future__ import annotations

RGB = tuple[int, int, int]

HAIR_STYLES: dict[str, tuple[str, ...]] = {
    "long_hair": ("long_hair",),
    "short_hair": ("short_hair",),
    "twintails": ("long_hair", "twintails"),
    "ponytail": ("long_hair", "ponytail"),
}

HAIR_COLOURS: dict[str, RGB] = {
    "black": (38, 32, 44),
    "brown": (122, 74, 40),
    "blonde": (246, 214, 84),
    "red": (214, 36, 44),
    "orange": (246, 132, 30),
    "pink": (250, 140, 192),
    "purple": (140, 66, 204),
    "blue": (42, 92, 222),
    "green": (46, 168, 78),
    "white": (226, 232, 248),  # a cool white, so it still shows on a white background
}

EYE_COLOURS: dict[str, RGB] = {
    "blue": (36, 96, 236),
    "red": (224, 28, 40),
    "green": (36, 176, 70),
    "yellow": (244, 204, 16),
    "purple": (156, 56, 214),
    "brown": (132, 76, 34),
    "pink": (248, 108, 182),
    "aqua": (26, 204, 204),
}

SKINS: dict[str, RGB] = {"pale": (255, 238, 230), "light": (250, 212, 182), "tan": (212, 158, 108),
                         "dark": (140, 92, 60)}
SKIN_TAGS: dict[str, tuple[str, ...]] = {"pale": ("pale_skin",), "light": (), "tan": ("tan",),
                                         "dark": ("dark_skin", "dark-skinned_female")}

OUTFIT_COLOURS: dict[str, RGB] = {
    "red": (212, 38, 50),
    "blue": (40, 78, 204),
    "green": (38, 150, 70),
    "yellow": (242, 202, 40),
    "pink": (246, 128, 180),
    "purple": (128, 58, 190),
    "black": (40, 40, 50),
    "white": (244, 244, 246),
}

OUTFITS = ("school_uniform", "dress", "hoodie", "armor", "swimsuit")

# Colours Danbooru has a colour tag for, per outfit (no `yellow_sailor_collar`, `green_armor`...):
# the sampler only draws these, so every picture's outfit colour is named in its tags.
_ALL = tuple(OUTFIT_COLOURS)
OUTFIT_COLOUR_CHOICES: dict[str, tuple[str, ...]] = {
    "school_uniform": tuple(c for c in _ALL if c != "yellow"),
    "dress": _ALL,
    "hoodie": _ALL,
    "armor": ("red", "blue", "black", "white"),
    "swimsuit": tuple(c for c in _ALL if c != "yellow"),
}

ACCESSORIES = ("hat", "hair_ribbon", "hairclip", "glasses")
# Accessories drawn on the face side of the head cannot be seen from behind.
HIDDEN_FROM_BEHIND = ("hairclip", "glasses")

VIEWS: dict[str, tuple[str, ...]] = {"front": (), "from_side": ("from_side",), "from_behind": ("from_behind",)}

# framing -> (crown's height as a fraction of the picture, figure units shown below the crown)
# A figure is 4 units tall (head = 1 unit); the picture's bottom edge cuts it at that many units.
FRAMINGS: dict[str, tuple[float, float]] = {
    "full_body": (0.08, 4.25),
    "cowboy_shot": (0.10, 2.75),
    "upper_body": (0.10, 1.95),
    "portrait": (0.13, 1.50),
}
LOWER_BODY_FRAMINGS = ("full_body", "cowboy_shot")  # skirts and shorts are in the picture
TWO_FIGURE_FRAMINGS = ("full_body", "cowboy_shot", "upper_body")

BACKGROUNDS: dict[str, tuple[str, ...]] = {
    "white": ("simple_background", "white_background"),
    "simple": ("simple_background",),  # plus `<colour>_background`
    "sky": ("blue_sky", "cloud", "day", "outdoors", "sky"),
    "room": ("indoors", "window", "wooden_floor"),
}
BACKGROUND_COLOURS: dict[str, RGB] = {
    "grey": (198, 198, 204),
    "blue": (166, 198, 240),
    "pink": (246, 188, 210),
    "yellow": (246, 230, 156),
    "green": (182, 224, 176),
}

# Drawing styles change how a picture is rendered, never what it shows; a post names its style
# as an artist tag, the way boorus name a drawing's artist.
STYLES = ("flat", "shaded", "outlined", "glossy")


def style_tag(style: str) -> str:
    return f"{style}_(artist)"


COPYRIGHT = "kiln_world"
RATING = "g"


def outfit_tags(outfit: str, colour: str, lower_visible: bool) -> tuple[str, ...]:
    """The tags an outfit earns; garments below the waist only when the framing shows them."""
    if outfit == "school_uniform":
        tags = ["school_uniform", "serafuku", f"{colour}_sailor_collar"]
        if lower_visible:
            tags.append(f"{colour}_skirt")
        return tuple(tags)
    if outfit == "dress":
        return ("dress", f"{colour}_dress")
    if outfit == "hoodie":
        return ("hoodie", f"{colour}_hoodie") + (("black_shorts", "shorts") if lower_visible else ())
    if outfit == "armor":
        return ("armor", f"{colour}_armor")
    if outfit == "swimsuit":
        return ("one-piece_swimsuit", "swimsuit", f"{colour}_one-piece_swimsuit")
    raise ValueError(f"unknown outfit {outfit!r}; known: {', '.join(OUTFITS)}")


def hair_colour_tag(colour: str) -> str:
    return "blonde_hair" if colour == "blonde" else f"{colour}_hair"


def eye_colour_tag(colour: str) -> str:
    return f"{colour}_eyes"


def all_general_tags() -> set[str]:
    """Every general tag a post of this world can carry (the tagger's general vocabulary)."""
    tags = {"1girl", "solo", "2girls", "multiple_girls"}
    tags |= {t for ts in HAIR_STYLES.values() for t in ts}
    tags |= {hair_colour_tag(c) for c in HAIR_COLOURS} | {eye_colour_tag(c) for c in EYE_COLOURS}
    tags |= {t for ts in SKIN_TAGS.values() for t in ts}
    for outfit, colours in OUTFIT_COLOUR_CHOICES.items():
        for c in colours:
            tags |= set(outfit_tags(outfit, c, True))
    tags |= set(ACCESSORIES) | {t for ts in VIEWS.values() for t in ts} | set(FRAMINGS)
    tags |= {t for ts in BACKGROUNDS.values() for t in ts} | {f"{c}_background" for c in BACKGROUND_COLOURS}
    return tags
