"""Model families (sd15, sdxl, tiny-sd15, tiny-sdxl, later anima): one file each, one registry."""
