"""Pure state-dict operations on LoRAs and checkpoints, and the file-level commands."""
