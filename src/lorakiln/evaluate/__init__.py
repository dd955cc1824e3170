"""Sampling, grids, metrics (one per file) and reports."""
