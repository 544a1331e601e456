"""The pytest11 entry point: options, and fixtures over every ``--etm`` bundle.

Nothing here imports torch or ExecuTorch; only a test that asks for a loaded
model pays for the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from etm_lint.format.bundle import Bundle


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etm", "ExecuTorch model bundles (.etm)")
    group.addoption(
        "--etm",
        action="append",
        default=[],
        metavar="PATH",
        help="a bundle to test; repeatable. Tests using the etm fixtures run "
        "once per bundle.",
    )
    parser.addini("etm_bundles", "bundles to test, as with --etm", type="paths")


def bundle_paths(config: pytest.Config) -> list[Path]:
    given = [Path(p) for p in config.getoption("etm")]
    if not given:
        given = [Path(p) for p in config.getini("etm_bundles")]
    return given


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "etm_path" in metafunc.fixturenames:
        paths = bundle_paths(metafunc.config)
        metafunc.parametrize(
            "etm_path", paths, ids=[p.name for p in paths], scope="session"
        )


@pytest.fixture(scope="session")
def etm_bundle(etm_path: Path) -> Iterator[Bundle]:
    """The opened bundle (zip directory and members, read in place)."""
    with Bundle(etm_path) as bundle:
        yield bundle
