"""One artist or style dominating (seed 004: style fixation; seed 000: the source style bled
into every output until style-varied images were added)."""

from __future__ import annotations

from collections import Counter

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, pct

STYLE_TAGS = frozenset("""
anime_screencap 3d realistic photorealistic sketch lineart monochrome greyscale flat_color
cel_shading chibi pixel_art watercolor_(medium) traditional_media oekaki official_art
game_cg key_visual cover_image toon_(style) retro_artstyle 1990s_(style) 1980s_(style) faux_figurine
""".split())


@RULES.register("style")
def style(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    n = len(ds.items)
    out = []
    artists = Counter(a for it in ds.items for a in set(it.artists))
    for artist, count in artists.most_common():
        if count / n <= cfg.max_artist_share:
            break
        out.append(_finding(ds, f"artist {artist}", count, cfg.max_artist_share,
                            [it.id for it in ds.items if artist in it.artists], {"artist": artist}))
    for tag in sorted(STYLE_TAGS):
        count = ds.tag_counts.get(tag, 0)
        if count / n > cfg.max_style_share:
            out.append(_finding(ds, f"style tag {tag}", count, cfg.max_style_share,
                                [it.id for it in ds.items if tag in it.tags], {"tag": tag}))
    return out


def _finding(ds: Dataset, what: str, count: int, limit: float, ids: list[str], extra: dict) -> Finding:
    n = len(ds.items)
    return Finding(
        "style", "warning",
        f"{what} is {count} of {n} images ({pct(count / n)}, limit {pct(limit)}): the LoRA will learn that "
        "style along with the character",
        ids,
        "add images in other styles (seed 000 iteration 4-b: img2img style variants), keep the style tag in "
        "the captions so it can be prompted away, or drop some of these images",
        {"count": count, "images": n, "share": round(count / n, 4), **extra})
