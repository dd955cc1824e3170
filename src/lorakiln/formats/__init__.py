"""File formats shared by training, merging and evaluation: kohya LoRA files, key maps, hashes."""
