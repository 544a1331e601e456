"""The fixtures, the per-process pool of loaded models, and speed measurement.

A model is loaded at most once per bundle in each process (each xdist worker
has its own), by whichever asks first: the ``etm_model`` fixture or a golden
case. A bundle that cannot be opened or loaded is remembered with its error,
so every test that needs it fails at once with the same one-line message.
"""

from __future__ import annotations

import logging
import os
import statistics
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from etm_lint.errors import EtmError

if TYPE_CHECKING:
    from etm_lint.runtime.bundle import BundleModel, OpenedBundle
    from etm_lint.runtime.runner import Generation, Timing

RUNTIME_HINT = (
    "install the runtime extra: pip install 'etm-lint[runtime]' (from a "
    "checkout: pip install -c constraints.txt -e '.[runtime]')"
)


class ModelPool:
    """Loaded bundles of this process, by absolute path, or why they failed."""

    def __init__(self) -> None:
        self._found: dict[str, BundleModel | EtmError] = {}

    def get(self, path: str | os.PathLike[str]) -> BundleModel:
        key = os.path.abspath(path)
        found = self._found.get(key)
        if found is None:
            found = self._load(path)
            self._found[key] = found
        if isinstance(found, EtmError):
            raise found
        return found

    @staticmethod
    def _load(path: str | os.PathLike[str]) -> BundleModel | EtmError:
        try:
            _import_runtime()
            from etm_lint.runtime.bundle import BundleModel

            return BundleModel.load(path)
        except ModuleNotFoundError as err:
            if (err.name or "").split(".")[0] not in ("torch", "executorch"):
                raise
            return EtmError(f"{os.fspath(path)}: {err.name} is missing; {RUNTIME_HINT}")
        except EtmError as err:
            return err

    def clear(self) -> None:
        self._found.clear()


def _import_runtime() -> None:
    # torch and its companions log and warn while they import (deprecations,
    # optional kernels they cannot find); that is not the test's output.
    # Greedy generation needs executorch.runtime too (the forward loop).
    # Native code prints from its static initializers: capture the fds too.
    from etm_lint.runtime.runner import captured

    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), captured():
            warnings.simplefilter("ignore")
            import executorch.extension.llm.runner
            import executorch.runtime  # noqa: F401
    finally:
        logging.disable(logging.NOTSET)


POOL = pytest.StashKey[ModelPool]()


def pool(config: pytest.Config) -> ModelPool:
    if POOL not in config.stash:
        config.stash[POOL] = ModelPool()
    return config.stash[POOL]


# ------------------------------------------------------------ speed


@dataclass(frozen=True)
class Speed:
    """Medians over timed runs, each on ``time.perf_counter_ns``."""

    runs: int
    decode_tokens_per_s: float
    time_to_first_token_s: float
    decode_samples: tuple[float, ...]
    ttft_samples: tuple[float, ...]


def measure(generate: Callable[[], Generation], runs: int, warmup: int = 1) -> Speed:
    """Call ``generate`` ``warmup`` times untimed, then ``runs`` times; medians."""
    for _ in range(warmup):
        generate()
    timings = [generate().timing for _ in range(max(1, runs))]
    return speed_of(timings)


def speed_of(timings: Sequence[Timing]) -> Speed:
    decode = tuple(t.decode_tokens_per_s for t in timings)
    ttft = tuple(t.time_to_first_token_s for t in timings)
    return Speed(
        runs=len(timings),
        decode_tokens_per_s=statistics.median(decode),
        time_to_first_token_s=statistics.median(ttft),
        decode_samples=decode,
        ttft_samples=ttft,
    )


# ------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def etm_bundle(etm_path: Path) -> Iterator[OpenedBundle]:
    """The bundle read in place, no runtime needed: ``metadata``,
    ``chat_template``, ``special_tokens``, ``tokenizer`` (loaded as the
    runtime loads it), ``render(messages)`` and the zip ``archive``."""
    from etm_lint.runtime.bundle import OpenedBundle

    try:
        bundle = OpenedBundle(etm_path)
    except EtmError as err:
        failure = str(err)
    else:
        with bundle:
            yield bundle
        return
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def etm_model(etm_path: Path, request: pytest.FixtureRequest) -> BundleModel:
    """The bundle loaded in ExecuTorch's LLM runner, once per process.

    ``etm_model.generate(prompt=...)`` or ``generate(messages=[...])`` returns
    a ``Generation``: ``text``, ``token_ids``, ``stop_reason``, ``timing``.
    """
    try:
        return pool(request.config).get(etm_path)
    except EtmError as err:
        failure = str(err)
    # Outside the except block, so the report shows the one line only.
    pytest.fail(failure, pytrace=False)
