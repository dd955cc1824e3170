"""Import-light foundations (no torch): records, manifest, errors, progress, registries."""
