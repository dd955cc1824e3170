"""Taggers (ONNX runners) and pure tag post-processing."""
