"""etm-lint: read, write and check single-file ExecuTorch LLM bundles (.etm)."""

__version__ = "0.1.0"
