"""Benchmarks of etm-lint's cost against bundle size (not run as timed tests)."""
