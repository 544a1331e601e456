"""Running bundles: ExecuTorch's LLM runner, and a forward loop for exact ids.

Importing this package imports neither torch nor executorch; ``LoadedModel.load``
does, on first use. Install the ``runtime`` extra for them.
"""

from __future__ import annotations

from etm_lint.runtime.runner import (
    STOP_REASONS,
    Generation,
    LoadedModel,
    RunnerError,
    Timing,
)

__all__ = ["STOP_REASONS", "Generation", "LoadedModel", "RunnerError", "Timing"]
