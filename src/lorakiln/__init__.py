"""lorakiln: pictures of a character in, a trained and tested LoRA out."""

__version__ = "0.1.0"
