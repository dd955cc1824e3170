"""Pure caption operations: each maps one image's tag list to a new tag list.

They never read files or the manifest; services/caption.py applies them to the kept images
and records every application in the edit history (captions/history.py).
"""

from lorakiln.captions.ops.consolidate import consolidate
from lorakiln.captions.ops.overlap import drop_overlap
from lorakiln.captions.ops.remove import TagMatcher, blacklist_presets, build_matcher, remove_tags
from lorakiln.captions.ops.replace import replace_tag
from lorakiln.captions.ops.trigger import put_first

__all__ = [
    "TagMatcher", "blacklist_presets", "build_matcher", "consolidate", "drop_overlap", "put_first",
    "remove_tags", "replace_tag",
]
