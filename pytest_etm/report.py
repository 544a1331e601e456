"""What the controlling process reports: the speed table, JSON, golden rewrites.

Each golden item puts its record on its test report (``etm_record`` and, in
update mode, ``etm_update``: plain JSON values, so pytest-xdist carries them
from its workers). Only the controller, the process without ``workerinput``,
collects them, writes the terminal summary and the JSON report, and rewrites
golden files, so nothing is written twice or concurrently.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from etm_lint.errors import EtmError
from pytest_etm import golden


@dataclass
class Collected:
    records: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


class Reporter:
    """Registered in the controlling process only; collects and writes."""

    def __init__(self, config: pytest.Config, json_path: Path | None):
        self.config, self.json_path = config, json_path
        self.found = Collected()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        record = getattr(report, "etm_record", None)
        if isinstance(record, dict):
            self.found.records.append({**record, "outcome": report.outcome})
        update = getattr(report, "etm_update", None)
        if isinstance(update, dict):
            self.found.updates.append(update)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        apply_updates(self.found)
        if self.found.problems:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if self.json_path is not None:
            write_json(self.json_path, self.found)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminal_summary(terminalreporter, self.found)


# ------------------------------------------------------------ golden rewrites


def apply_updates(found: Collected) -> None:
    """Rewrite each golden file once, with every case that produced new values.

    A case run on several bundles is recorded only when they all agree: a
    golden file holds one expectation per case.
    """
    by_file: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for update in found.updates:
        by_file[update["file"]][update["case"]].append(update)
    for file, cases in sorted(by_file.items()):
        values = {}
        for case, entries in sorted(cases.items()):
            kinds = {json.dumps(e["values"], sort_keys=True) for e in entries}
            if len(kinds) > 1:
                bundles = ", ".join(sorted(Path(e["bundle"]).name for e in entries))
                found.problems.append(
                    f"{file}: case {case!r} not recorded: the bundles disagree "
                    f"({bundles}); give them separate golden files"
                )
                continue
            values[case] = entries[0]["values"]
        if values:
            _rewrite(Path(file), values, found)


def _rewrite(path: Path, values: dict[str, Any], found: Collected) -> None:
    try:
        text = path.read_text(encoding="utf-8")
        new = golden.rewrite(text, path, values)
        _write_atomic(path, new)
    except (OSError, EtmError) as err:
        found.problems.append(f"{path}: not rewritten: {err}")
        return
    names = ", ".join(sorted(values))
    found.recorded.append(f"{path}: recorded {len(values)} case(s): {names}")


def _write_atomic(path: Path, text: str) -> None:
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------ the terminal

COLUMNS = ("case", "runs", "ttft ms", "max ms", "decode tok/s", "min tok/s", "")


def speed_rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for record in records:
        if "decode_tokens_per_s" not in record:
            continue
        low = record.get("min_decode_tokens_per_s")
        high = record.get("max_time_to_first_token_s")
        tps, ttft = record["decode_tokens_per_s"], record["time_to_first_token_s"]
        verdict = "-"
        if low is not None or high is not None:
            slow = (low is not None and tps < low) or (high is not None and ttft > high)
            verdict = "TOO SLOW" if slow else "ok"
        rows.append(
            (
                f"{record['case']}[{record['label']}]",
                str(record["runs"]),
                f"{ttft * 1e3:.2f}",
                "-" if high is None else golden.number(high * 1e3),
                f"{tps:.1f}",
                "-" if low is None else golden.number(low),
                verdict,
            )
        )
    return rows


def table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = []
    for row in [COLUMNS, *rows]:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def terminal_summary(reporter: Any, found: Collected) -> None:
    rows = speed_rows(found.records)
    if rows:
        reporter.write_sep("=", "etm speed")
        for line in table(rows):
            reporter.write_line(line)
        reporter.write_line(
            "ttft: time to first token; speeds are medians of the timed runs "
            "(one run where a case has no threshold)"
        )
    if found.recorded or found.problems:
        reporter.write_sep("=", "etm golden files")
        for line in found.recorded:
            reporter.write_line(line)
        for line in found.problems:
            reporter.write_line(line, red=True)


# ------------------------------------------------------------ JSON


def write_json(path: Path, found: Collected) -> None:
    document = {
        "cases": found.records,
        "recorded": found.recorded,
        "problems": found.problems,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, json.dumps(document, indent=2) + "\n")
