"""Training: model families, LoRA/LyCORIS networks with kohya-format output, data, optimisers, loop."""
