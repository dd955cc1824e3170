"""Tags present in every image (seed 001: 'Pruned tags will be absorbed into the trigger word';
seed 003 'When to consolidate tags'). A tag in every caption never varies, so the LoRA cannot
tell it from the trigger: the trigger absorbs it anyway, and prompts without the tag lose it.
The special tags `kiln caption order` adds (score_9, source_anime, rating and quality tags) are
in every caption on purpose and are left out."""

from __future__ import annotations

from lorakiln.captions.order import SPECIAL_TAGS
from lorakiln.config.doctor import DoctorConfig
from lorakiln.planning.doctor.base import RULES, Dataset, Finding, norm_tag


@RULES.register("absorbed")
def absorbed(ds: Dataset, cfg: DoctorConfig) -> list[Finding]:
    n = len(ds.items)
    skip = {norm_tag(t) for t in (*cfg.ignore_tags, *cfg.core_tags, *ds.trigger, *SPECIAL_TAGS)}
    everywhere = sorted(t for t, c in ds.tag_counts.items() if c == n and t not in skip)
    if n < 2 or not everywhere:
        return []
    return [Finding(
        "absorbed", "warning",
        f"in every image and not pruned: {', '.join(everywhere)}; the trigger will absorb these, and a "
        "prompt without them will lose them",
        [], "if they are the character's fixed features, prune them (`kiln caption prune-core --suggest`, "
        "then `kiln caption remove TAG`); if they should vary, add images without them",
        {"tags": everywhere, "images": n})]
