"""Running bundles: ExecuTorch's LLM runner, and a forward loop for exact ids.

``BundleModel.load("model.etm")`` opens a bundle and loads it in the runner;
``generate(prompt=...)`` or ``generate(messages=[...])`` then uses the
bundle's chat template and settings. ``open_bundle`` only puts the members in
the cache and says where they are; ``LoadedModel`` runs loose files.

Importing this package imports neither torch nor executorch; loading a model
does, on first use. Install the ``runtime`` extra for them.
"""

from __future__ import annotations

from etm_lint.runtime.bundle import (
    BundleModel,
    Defaults,
    OpenedBundle,
    RunnableBundle,
    open_bundle,
    runtime_tokenizer_path,
)
from etm_lint.runtime.runner import (
    STOP_REASONS,
    Generation,
    LoadedModel,
    RunnerError,
    Timing,
)

__all__ = [
    "STOP_REASONS",
    "BundleModel",
    "Defaults",
    "Generation",
    "LoadedModel",
    "OpenedBundle",
    "RunnableBundle",
    "RunnerError",
    "Timing",
    "open_bundle",
    "runtime_tokenizer_path",
]
