"""Hostile input: a corpus of malicious files and the guarantees over it."""
