"""Use cases that the CLI (and later the web UI) call; config is resolved here, once."""
