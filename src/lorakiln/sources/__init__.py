"""Imageboard sources: one file per site behind one registry."""
