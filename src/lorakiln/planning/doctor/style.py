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
    out = []
    seen = Counter()  # images x repeats per artist
    for it in ds.items:
        for a in set(it.artists):
            seen[a] += it.repeats
    for artist, count in seen.most_common():
        if count / ds.weight <= cfg.max_artist_share:
            break
        by = [it for it in ds.items if artist in it.artists]
        out.append(_finding(ds, f"artist {artist}", by, cfg.max_artist_share, {"artist": artist}))
    for tag in sorted(STYLE_TAGS):
        carrying = [it for it in ds.items if tag in it.tags]
        if carrying and ds.share(carrying) > cfg.max_style_share:
            out.append(_finding(ds, f"style tag {tag}", carrying, cfg.max_style_share, {"tag": tag}))
    return out


def _finding(ds: Dataset, what: str, items: list, limit: float, extra: dict) -> Finding:
    """Shares are of images x repeats: what an epoch shows, as `kiln plan` weights it."""
    n, count, share = len(ds.items), len(items), ds.share(items)
    return Finding(
        "style", "warning",
        f"{what} is {count} of {n} images ({pct(share)} of an epoch, limit {pct(limit)}): the LoRA will learn "
        "that style along with the character",
        [it.id for it in items],
        "add images in other styles (seed 000 iteration 4-b: img2img style variants), keep the style tag in "
        "the captions so it can be prompted away, or drop some of these images",
        {"count": count, "images": n, "share": round(share, 4), **extra})
