"""The toy world's pretrained base model: SD1.5's classes at toy size, trained on the renders.

`arch` holds the configs and the single-file writer, `data` the renders and captions,
`train_vae` and `train_unet` the two training scripts (`python -m lorakiln.toyworld.base.train_vae`),
`adherence` the measurement of what the samples show (docs/toyworld.md, "The base model").
"""

from importlib import resources
from pathlib import Path


def weights_path() -> Path:
    """The committed base model file (it may be absent in a checkout without weights)."""
    return Path(str(resources.files("lorakiln.toyworld") / "weights" / "base" / "toy-sd15.safetensors"))
