"""Registry of known taggers: where their files live and what their labels look like.

Adding a tagger is one `TAGGERS.register(...)` line here. Balanced thresholds are the
precision=recall values published on each model card (reference/datasets.md §10.1).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from lorakiln.core.errors import KilnError
from lorakiln.core.registry import Registry

MODEL_FILE = "model.onnx"
WD_LABELS = "selected_tags.csv"
E621_LABELS = "tags-selected.csv"


@dataclass(frozen=True)
class Label:
    """One output of a tagger: its tag name and our category name (general, character, ...)."""

    name: str
    category: str


LabelParser = Callable[[str, str], list[Label]]  # (csv text, file name for errors) -> labels
LABEL_FORMATS: Registry[LabelParser] = Registry("label format")


@dataclass(frozen=True)
class TaggerSpec:
    name: str
    repo_id: str | None = None
    revision: str = "main"
    model_file: str = MODEL_FILE
    labels_file: str = WD_LABELS
    label_format: str = "wd"
    balanced: float | None = None  # published P=R threshold, if any
    notes: str = ""

    def with_revision(self, revision: str | None) -> "TaggerSpec":
        return replace(self, revision=revision) if revision else self

    @property
    def files(self) -> tuple[str, str]:
        return (self.model_file, self.labels_file)


TAGGERS: Registry[TaggerSpec] = Registry("tagger")


def _wd(name: str, repo: str, balanced: float | None, notes: str) -> None:
    TAGGERS.register(name, TaggerSpec(name, f"SmilingWolf/{repo}", balanced=balanced, notes=notes))


_wd("wd-eva02-large-v3", "wd-eva02-large-tagger-v3", 0.5296, "v3, 315M params, best quality, slowest")
_wd("wd-vit-large-v3", "wd-vit-large-tagger-v3", None, "v3, large ViT (no published P=R threshold)")
_wd("wd-swinv2-v3", "wd-swinv2-tagger-v3", 0.2653, "v3 (default), good quality/speed balance")
_wd("wd-vit-v3", "wd-vit-tagger-v3", 0.2614, "v3, fastest v3")
_wd("wd-convnext-v3", "wd-convnext-tagger-v3", 0.2682, "v3")
_wd("wd-v1-4-swinv2-v2", "wd-v1-4-swinv2-tagger-v2", 0.3771, "v1.4/v2 dataset")
_wd("wd-v1-4-convnext-v2", "wd-v1-4-convnext-tagger-v2", 0.3685, "v1.4/v2 dataset")
_wd("wd-v1-4-convnextv2-v2", "wd-v1-4-convnextv2-tagger-v2", 0.371, "v1.4/v2 dataset")
_wd("wd-v1-4-vit-v2", "wd-v1-4-vit-tagger-v2", 0.3537, "v1.4/v2 dataset")
_wd("wd-v1-4-moat-v2", "wd-v1-4-moat-tagger-v2", 0.3771, "v1.4/v2 dataset")
TAGGERS.register("z3d-e621-convnext", TaggerSpec(
    "z3d-e621-convnext", "toynya/Z3D-E621-Convnext", labels_file=E621_LABELS, label_format="e621",
    notes="e621 tags (species, character, ...) for furry characters; licence 'other'",
))


def find_by_repo(repo_id: str) -> TaggerSpec | None:
    for _, spec in TAGGERS.items():
        if spec.repo_id and spec.repo_id.lower() == repo_id.lower():
            return spec
    return None


def balanced_threshold(model: str) -> float:
    """The published P=R threshold of a registered tagger, or a clear error."""
    spec = TAGGERS.get(model) if model in TAGGERS else None
    if spec is None or spec.balanced is None:
        known = ", ".join(f"{n}={s.balanced}" for n, s in TAGGERS.items() if s.balanced is not None)
        raise KilnError(
            f"tagger {model!r} has no published balanced threshold; give a number "
            f"(`--threshold 0.35`). Known: {known}"
        )
    return spec.balanced
