"""Typed configuration: project.toml root, one pydantic model per stage section, presets."""
