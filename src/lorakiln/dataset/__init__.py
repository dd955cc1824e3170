"""Dataset stages: decoding, dedupe, filters (later crops and identity), as small actions."""
