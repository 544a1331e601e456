"""The benchmark suite's smoke mode runs end to end on the example bundles.

``python -m benchmarks.run --smoke`` runs the lint, hash and start-up
measurements on the example bundles and builds nothing. The parts that load
ExecuTorch (its own readers on the example program, golden files of one and
two cases, ``benchmarks/bench_harness.py`` with one short generation per
side) are separate tests here, so that ``pytest -n 2`` spreads their import
time; each also renders its table and ratios as the full run does.

Timings are never asserted (CI machines vary); what is checked is that the
measuring machinery works on real processes and that what it reports is
consistent: every lint finished, every figure was measured, the lint read
less from a bundle than the bundle's weights, the runtime computed the
constants ``etm inspect`` read, the recorded golden cases pass, and the
fixture and the runner made the same number of tokens.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_golden, bench_lint, bench_tools, measure, report, run
from benchmarks.bench_lint import INPUT, Workspace
from benchmarks.run import FOLDER
from tests.conftest import EXAMPLES, REPO


def smoke_run(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.run", "--smoke"),
            *("--skip", "tools,golden,harness", "--json", str(out)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, json.loads(out.read_text())


def lint_rows(results: dict[str, Any], folder: bool) -> list[Any]:
    """Rows of bundles, or of loose folders (which the run has since removed)."""
    folders = {s["label"] for s in results["subjects"] if s["layout"] == FOLDER}
    return [row for row in results["lint"] if (row["label"] in folders) == folder]


def test_smoke_run_measures_every_bundle(tmp_path: Path) -> None:
    """One run (the lint part, twice as long under xdist if split in tests)."""
    printed, data = smoke_run(tmp_path)
    for title in (
        "Ratios measured in this run, beside their targets",
        "Lint cost by bundle size",
        "Hash verification (etm-lint --verify-hashes) against sha256sum",
        "Start-up: etm-lint good.etm",
    ):
        assert title in printed
    assert "stories260K_ext" in printed
    results = data["results"]
    rows = results["lint"]
    labels = [row["label"] for row in rows]
    assert labels == ["stories260K", "stories260K_ext", "stories260K folder"]
    for row in rows:
        assert row["returncode"] in (0, 1)
        assert row["wall"] > 0 and row["cpu"] > 0 and row["max_rss"] > 0
        assert not row["findings"].startswith("crashed")
        anatomy = row["anatomy"]
        assert anatomy["weights"] + anatomy["floor"] <= anatomy["file_size"]
        if Path("/proc/self/io").is_file():
            assert row["rchar"] > 0
    for row in lint_rows(results, folder=False):
        assert row["anatomy"]["file_size"] == Path(row["path"]).stat().st_size
        if measure.strace_available():
            # What the lint read from the bundle: less than its weights.
            assert 0 < row["reads"][INPUT] < row["anatomy"]["weights"]
    assert [h["label"] for h in results["hashes"]] == labels[:2]


def test_folder_lint_reads_less_than_the_weights(tmp_path: Path) -> None:
    if not measure.strace_available():
        pytest.skip("strace is not installed")
    space = Workspace(tmp_path)
    subject = run.Subject("stories260K", "inside", EXAMPLES / "stories260K.etm")
    folder = run.unpacked(subject, space, None).path
    argv = [*bench_lint.console("etm-lint"), str(folder)]
    reads = bench_lint.reads_by_kind(argv, folder, space)
    assert 0 < reads[INPUT] < bench_lint.anatomy(folder).weights


def test_measure_counts_a_known_read(tmp_path: Path) -> None:
    """rchar of ``cat FILE`` includes the file's size: the counters are real."""
    bundle = EXAMPLES / "stories260K.etm"
    if not Path("/proc/self/io").is_file():
        pytest.skip("no /proc/<pid>/io on this system")
    sample = measure.run(["cat", str(bundle)], cwd=tmp_path)
    assert sample.returncode == 0
    assert sample.rchar >= bundle.stat().st_size


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.mark.runtime
def test_executorch_readers(space: Workspace) -> None:
    """etm inspect, executorch.runtime and exir on the example's program."""
    pytest.importorskip("executorch")
    subject = run.Subject("stories260K", "inside", EXAMPLES / "stories260K.etm")
    folder = run.unpacked(subject, space, None).path
    (program,) = folder.glob("*.pte")
    tools = bench_tools.compare(program, 1, space)
    assert [row.name for row in tools.rows] == [
        "etm inspect",
        "executorch.runtime load + constant methods",
        "exir deserialize_pte_binary",
    ]
    assert all(row.returncode == 0 for row in tools.rows)
    assert tools.constants_agree is True
    assert "Reading one program" in report.text(report.tools_table(tools))
    assert len(run._tool_checks(tools)) == 5


@pytest.mark.runtime
def test_golden_files_pass_after_recording(space: Workspace) -> None:
    pytest.importorskip("executorch")
    rows = bench_golden.golden_costs(EXAMPLES / "stories260K.etm", [1, 2], 4, 1, space)
    assert [row.cases for row in rows] == [1, 2]
    for row in rows:
        assert row.returncode == 0
        assert row.passed == row.cases
        assert row.wall > 0 and row.cpu > 0
    assert "Golden-prompt tests" in report.text(report.golden_table(rows))
    (check,) = run._golden_checks(types.SimpleNamespace(golden=rows))  # type: ignore[arg-type]
    assert check.name.startswith("golden tests, each added case (1 to 2 cases")


@pytest.mark.runtime
def test_bench_harness_quick_mode(space: Workspace) -> None:
    """benchmarks/bench_harness.py, its JSON, its table and its two targets."""
    pytest.importorskip("executorch")
    bundle = EXAMPLES / "stories260K.etm"
    result = bench_golden.harness(bundle, 8, 1, 1, space)
    assert result.returncode == 0, result.error
    data = result.data
    assert Path(data["bundle"]) == bundle.resolve()
    fixture, direct = data["fixture"], data["direct"]
    assert fixture["tokens"] == direct["tokens"] > 1
    assert fixture["decode_tokens_per_s"] > 0 and direct["decode_tokens_per_s"] > 0
    assert data["open_bundle_s"] > 0 and data["open_loose_s"] > 0
    assert "TextLLMRunner direct" in report.text(report.harness_table(result))
    found = run._harness_checks(types.SimpleNamespace(harness=result))  # type: ignore[arg-type]
    targets = [c.target for c in found]
    assert targets[0] == ">= 0.97" and targets[-1] == "<= 1.05"
    assert set(targets[1:-1]) == {"reported"}
