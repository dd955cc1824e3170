"""typer commands: thin wiring that calls one service each. Heavy imports stay inside commands."""
