"""Outfits and accessories that should stay optional (seed 003 'Clothing and accessories':
present in at least a quarter of the images, preferably half, and absent in at least a quarter,
or the outfit sticks to the character; seed 000: clothes that always stick). Shares are of the
images an epoch shows (images x repeats), so more repeats on a subset count as the fix says."""

from __future__ import annotations

import re

from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, norm_tag, pct

# last word of a tag that names something worn (our own list; `black_jacket` -> jacket)
WORN = frozenset("""
shirt blouse dress skirt jacket coat capelet cape cloak shawl hoodie sweater cardigan vest
uniform serafuku kimono yukata hakama armor leotard bodysuit swimsuit bikini apron corset bra
panties underwear lingerie shorts pants trousers jeans leggings pantyhose thighhighs kneehighs
socks stockings legwear garter garters boots shoes sneakers sandals heels loafers slippers gloves
mittens necktie tie bowtie ribbon bow scarf choker collar necklace pendant earrings earring
bracelet wristband anklet ring jewelry brooch glasses eyewear sunglasses goggles monocle hat cap
beret helmet hood headwear headgear headband hairband hairclip hairpin tiara crown veil mask
belt strap straps harness suspenders sash obi epaulettes armband sleeves cuffs
""".split())
WORN_TAGS = frozenset({"hair_ornament", "hair_flower", "high_heels", "detached_sleeves", "detached_collar",
                       "thigh_strap", "chest_strap", "wrist_cuffs", "animal_hood", "school_uniform"})
NOT_WORN_PREFIX = ("no_", "bare_", "without_", "sleeves_rolled", "long_sleeves", "short_sleeves", "sleeveless")


def is_worn(tag: str) -> bool:
    if tag in WORN_TAGS:
        return True
    if tag.startswith(NOT_WORN_PREFIX):
        return False
    return tag.rsplit("_", 1)[-1] in WORN


@RULES.register("toggles")
def toggles(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    """Clothing in nearly every image sticks; a declared toggle must be present and absent often enough."""
    n = len(ds.items)
    core = {norm_tag(t) for t in cfg.core_tags} | {norm_tag(t) for t in ds.trigger}
    declared = [norm_tag(t) for t in cfg.toggles]
    out = []
    for tag, count in sorted(ds.tag_counts.items()):
        if tag in core or tag in declared or not is_worn(tag):
            continue
        if count < n and 1 - _share(ds, tag) < cfg.toggle_share:
            out.append(_sticks(ds, tag, count, cfg))
    for tag in declared:
        count = ds.tag_counts.get(tag, 0)
        if _share(ds, tag) < cfg.toggle_share:
            out.append(_rare(ds, tag, count, cfg))
        elif 1 - _share(ds, tag) < cfg.toggle_share:
            out.append(_sticks(ds, tag, count, cfg))
    return out


def _subset_name(tag: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", tag).strip("_.-") or "toggle"


def _share(ds: Dataset, tag: str) -> float:
    return ds.share([it for it in ds.items if tag in it.tags])


def _carrying(ds: Dataset, tag: str) -> list[str]:
    return [it.id for it in ds.items if tag in it.tags]


def _sticks(ds: Dataset, tag: str, count: int, cfg: DoctorConfig) -> Finding:
    n, share = len(ds.items), _share(ds, tag)
    return Finding(
        "toggles", "warning",
        f"{tag} is in {count} of {n} images ({pct(share)} of an epoch); absent in fewer than {pct(cfg.toggle_share)}, "
        f"so it will stick to the character and be hard to prompt away (seed 003)",
        _carrying(ds, tag),
        f"add images without {tag} (other outfits: seed 000's outfit augmentation), or if it is part of the "
        f"character, prune it into the trigger (`kiln caption remove {tag}`) and list it in [doctor].core_tags",
        {"tag": tag, "count": count, "images": n, "share": round(share, 4)})


def _rare(ds: Dataset, tag: str, count: int, cfg: DoctorConfig) -> Finding:
    n, share = len(ds.items), _share(ds, tag)
    return Finding(
        "toggles", "warning",
        f"{tag} is in only {count} of {n} images ({pct(share)} of an epoch); below {pct(cfg.toggle_share)} the LoRA "
        f"learns it weakly (seed 003: a quarter, preferably half)",
        _carrying(ds, tag),
        f"add images showing {tag}, or put them in a subset of their own (`kiln subset move --tag {tag} --to "
        f"{_subset_name(tag)}`) and give it more repeats (`kiln plan --weight {_subset_name(tag)}=2`)",
        {"tag": tag, "count": count, "images": n, "share": round(share, 4)})
