"""The linter: an engine that runs rules by family over a target."""
