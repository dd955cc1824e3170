"""Planning and checking a dataset before training: `kiln plan` and `kiln doctor`.

The arithmetic users do by hand in the seeds (repeats to balance outfits, epochs and steps
from tables, seed 003's learning-rate formula) and their rules of thumb about what a dataset
needs, as small pure functions that also say how each number was obtained.
"""
