"""The pytest11 entry point: options, and fixtures over every ``--etm`` bundle.

Nothing here imports torch or ExecuTorch; only a test that asks for a loaded
model pays for the runtime.

The jobs live apart: ``fixtures`` (the fixtures, the model pool, timing),
``golden`` (golden-prompt files and their items), ``lint`` (findings as
items), ``report`` (speed table, JSON report, golden rewrites).
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_etm import golden, report
from pytest_etm.fixtures import etm_bundle, etm_model, pool

__all__ = ["bundle_paths", "etm_bundle", "etm_model"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("etm", "ExecuTorch model bundles (.etm)")
    group.addoption(
        "--etm",
        action="append",
        default=[],
        metavar="PATH",
        help="a bundle to test; repeatable. Tests using the etm fixtures and "
        "golden-prompt cases run once per bundle.",
    )
    group.addoption(
        "--etm-update-goldens",
        action="store_true",
        default=False,
        help="rewrite the text and token_ids expectations of golden files "
        "from what the model produced",
    )
    group.addoption(
        "--etm-timed-runs",
        type=int,
        default=None,
        metavar="N",
        help="timed runs after the warm-up for cases with speed thresholds; "
        "the median counts (default 3)",
    )
    group.addoption(
        "--etm-min-decode-tps",
        type=float,
        default=None,
        metavar="TOKENS_PER_S",
        help="minimum decode speed for every golden case, replacing the "
        "files' own (0 turns the check off)",
    )
    group.addoption(
        "--etm-max-ttft",
        type=float,
        default=None,
        metavar="SECONDS",
        help="maximum time to first token for every golden case, replacing "
        "the files' own (0 turns the check off)",
    )
    group.addoption(
        "--etm-report",
        default=None,
        metavar="FILE",
        help="write each golden case's measured speed and thresholds as JSON",
    )
    group.addoption(
        "--etm-lint",
        action="store_true",
        default=None,
        help="add etm-lint's checks of every bundle as test items",
    )
    parser.addini("etm_bundles", "bundles to test, as with --etm", type="paths")
    parser.addini("etm_timed_runs", "as --etm-timed-runs", type="string", default="3")
    parser.addini("etm_lint", "as --etm-lint", type="bool", default=False)


def bundle_paths(config: pytest.Config) -> list[Path]:
    given = [Path(p) for p in config.getoption("etm")]
    if not given:
        given = [Path(p) for p in config.getini("etm_bundles")]
    return given


def pytest_configure(config: pytest.Config) -> None:
    runs = config.getoption("etm_timed_runs")
    if runs is None:
        try:
            runs = int(config.getini("etm_timed_runs"))
        except ValueError:
            raise pytest.UsageError("etm_timed_runs must be a whole number") from None
    if runs < 1:
        raise pytest.UsageError(f"--etm-timed-runs must be at least 1, got {runs}")
    config.stash[golden.OPTIONS] = golden.Options(
        update=bool(config.getoption("etm_update_goldens")),
        timed_runs=runs,
        min_decode_tokens_per_s=config.getoption("etm_min_decode_tps"),
        max_time_to_first_token_s=config.getoption("etm_max_ttft"),
    )
    if report.is_controller(config):
        json_path = config.getoption("etm_report")
        reporter = report.Reporter(config, Path(json_path) if json_path else None)
        config.pluginmanager.register(reporter, "etm-reporter")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "etm_path" in metafunc.fixturenames:
        paths = bundle_paths(metafunc.config)
        metafunc.parametrize(
            "etm_path", paths, ids=[p.name for p in paths], scope="session"
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if golden.is_golden(file_path):
        return golden.GoldenFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    wanted = config.getoption("etm_lint")
    if wanted is None:
        wanted = config.getini("etm_lint")
    if not wanted:
        return
    from pytest_etm.lint import lint_items

    every = golden.targets(config, bundle_paths(config))
    added = list(lint_items(session, [(t.path, t.label) for t in every]))
    items.extend(added)
    # Made after collection, so reported as collected here: the terminal's
    # "collected N items" counts them then.
    session.ihook.pytest_collectreport(
        report=pytest.CollectReport("", "passed", None, added)
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    made = yield
    if call.when == "call" and isinstance(item, golden.GoldenItem):
        # Plain JSON values: xdist serialises report attributes as they are.
        made.etm_record = item.etm_record  # type: ignore[attr-defined]
        made.etm_update = item.etm_update  # type: ignore[attr-defined]
    return made


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    pool(config).clear()
    lint = sys.modules.get("pytest_etm.lint")
    if lint is not None:
        lint.close_targets(config)
