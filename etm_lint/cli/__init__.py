"""Command-line entry points: ``etm-lint`` and ``etm``."""
