"""Bundled tiny data for the offline demo and the tests: generated images, a local booru replay."""
