"""What the dataset says about the character, from the LoRA's own ss_tag_frequency (or captions).

- tag shares: the share of training images carrying each tag;
- the subject tag (1girl / 1boy / ...) the probes should use;
- the training outfit: the most frequent tags that are neither core features (hair, eyes, body:
  captions/feature_tags.toml), nor the trigger, nor generic words about framing, view,
  background, expression or quality (GENERIC below, which lists no clothing), nor tags the
  project knows as character, copyright, artist or meta tags (`non_prompt_tags`).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from lorakiln.captions.model import tag_key
from lorakiln.captions.order import SPECIAL_TAGS

# tags that are not about what the picture shows: quality, rating and site meta words
META = frozenset({
    "highres", "absurdres", "commentary", "commentary_request", "english_commentary", "official_art",
    "masterpiece", "best_quality", "high_quality", "very_aesthetic", "aesthetic", "newest", "recent",
    "general", "sensitive", "questionable", "explicit", "safe", "nsfw", "signature", "watermark", "artist_name",
    "twitter_username", "dated", "anime_screencap", "official_style", "lowres", "translated", "translation_request",
    "bad_id", "bad_pixiv_id", "bad_twitter_id", "jpeg_artifacts", "md5_mismatch", "third-party_edit", "web_address",
})
# booru/tagger categories whose tags are not a look one prompts (general, species, imported captions are)
NON_PROMPT_CATEGORIES = frozenset({"character", "copyright", "artist", "meta", "rating", "lore", "invalid",
                                   "contributor"})
SUBJECTS = ("1girl", "1boy", "1other", "2girls", "2boys", "multiple_girls", "multiple_boys", "no_humans")
# framing, view and background words: about the picture, not the character
SCENE = frozenset({
    *SUBJECTS, "solo", "solo_focus", "male_focus", "female_focus", "portrait", "upper_body", "cowboy_shot",
    "full_body", "lower_body", "close-up", "from_behind", "from_side", "from_above", "from_below", "profile",
    "simple_background", "white_background", "grey_background", "gradient_background", "transparent_background",
    "black_background", "outdoors", "indoors", "day", "night", "sky", "cloud", "blue_sky",
})
# the place and its things (any `*_background` tag counts too: `is_scene`): a window or a wooden
# floor in a third of the pictures is not part of the character's outfit, nor a tag to prompt her by
SETTING = frozenset({
    "window", "curtains", "wall", "door", "floor", "wooden_floor", "tile_floor", "tiles", "stairs", "railing",
    "fence", "room", "bedroom", "classroom", "interior", "bed", "chair", "table", "desk", "couch", "shelf",
    "bookshelf", "lamp", "plant", "potted_plant", "tree", "bush", "grass", "field", "flower_field", "forest",
    "nature", "mountain", "scenery", "building", "city", "cityscape", "street", "road", "beach", "ocean", "sea",
    "water", "horizon", "sunset", "night_sky", "starry_sky", "star_(sky)", "moon", "snow", "rain",
    "cherry_blossoms", "petals", "leaf", "sunlight", "light_rays", "shadow", "depth_of_field", "blurry",
    "no_humans",
})
# the character's state: gaze, pose, expression (promptable, but not part of an outfit)
STATE = frozenset({
    "looking_at_viewer", "looking_away", "looking_to_the_side", "looking_back", "looking_up", "looking_down",
    "standing", "sitting", "smile", "open_mouth", "closed_mouth", "blush", ":d", ":o", "expressionless",
    "parted_lips", "teeth", "hand_up", "arms_up", "holding",
})
GENERIC = SCENE | SETTING | STATE | META | SPECIAL_TAGS  # special tags an order style adds (score_9, ...)


def is_scene(key: str) -> bool:
    """A framing, view, background or setting word (a tag key): about the picture, not the character."""
    return key in SCENE or key in SETTING or key.endswith("_background")


def non_prompt_tags(records: Iterable) -> frozenset[str]:
    """Tag keys that image records (booru categories, tagger categories) file only under categories
    one does not prompt a look with: character, copyright, artist, meta, rating, ... (never general)."""
    from lorakiln.tagging.merge import tag_categories

    prompt, other = set(), set()
    for record in records:
        for tag, category in tag_categories(record).items():
            (other if category in NON_PROMPT_CATEGORIES else prompt).add(tag_key(tag))
    return frozenset(other - prompt)


def tag_shares(frequency: Mapping[str, int], n_images: int) -> dict[str, float]:
    """Canonical tag -> share of images; counts above the image count are clipped to 1."""
    out: Counter = Counter()
    for tag, count in frequency.items():
        key = tag_key(str(tag))
        if key:
            out[key] += int(count)
    n = max(1, n_images or max(out.values(), default=1))
    return {t: min(1.0, c / n) for t, c in out.items()}


def subject(shares: Mapping[str, float]) -> str:
    best = max(SUBJECTS[:3], key=lambda t: shares.get(t, 0.0))
    return best if shares.get(best, 0.0) > 0 else "1girl"


def outfit_tags(shares: Mapping[str, float], trigger: Iterable[str], n: int = 6, min_share: float = 0.25,
                is_core=None, exclude: Iterable[str] = ()) -> list[str]:
    """The training outfit: the `n` most frequent tags (share >= min_share) that are not core,
    trigger, generic or in `exclude` (e.g. `non_prompt_tags`). `is_core(tag) -> bool` defaults to
    the bundled feature-tag list."""
    if is_core is None:
        from lorakiln.captions.features import bundled_features

        features = bundled_features()
        is_core = lambda t: features.group_of(t) is not None  # noqa: E731
    skip = {tag_key(t) for t in (*trigger, *exclude)} | GENERIC
    ranked = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))
    return [t for t, s in ranked if s >= min_share and t not in skip and not is_scene(t) and not is_core(t)][:n]
