"""Evaluation metrics, one per file."""
