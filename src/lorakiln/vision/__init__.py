"""Dataset vision: anime person/head/half-body detection (more of issue 12 to come)."""
