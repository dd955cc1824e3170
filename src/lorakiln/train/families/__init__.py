"""Model families (sd15, sdxl, tiny-sd15, tiny-sdxl, later anima): one file each, one registry."""

# importing a family module registers it in FAMILIES
from lorakiln.train.families import sd15, sdxl, tiny  # noqa: E402,F401
from lorakiln.train.families.base import FAMILIES  # noqa: E402,F401
