"""The corpus through ``etm-lint``, ``etm inspect`` and ``etm unpack``.

Each case runs in process through ``main(argv)`` (one test per case checks
every guarantee on one run of each command); a sweep in a real process adds
the memory bound, and a few real command runs check exit codes and stderr
as a user sees them.

Guarantees: no traceback (a finding, or one line on stderr with exit 2);
a time budget per check; the tool's cache grows by at most what a tokenizer
may weigh; the input is byte-for-byte unchanged; unpack writes nothing
outside its new folder and leaves no half-built one.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from etm_lint.cli import etm, lint
from etm_lint.lint import formatters
from etm_lint.lint.engine import load_rules
from etm_lint.lint.model import Finding, Severity
from etm_lint.tokenizer import DEFAULT_MAX_BYTES
from tests.hostile.harness import (
    CASE_BUDGET_S,
    Outcome,
    case_named,
    corpus,
    digest,
    names,
    run_main,
    tree_size,
)

LINT = ["--no-config", "--output-format", "json"]

# Cases whose right answer is a clean report, and why (from the rules' own
# documentation, not from a run).
CLEAN_IS_RIGHT = {
    "count_claims_65535": "zipfile reads the directory by its stated size; the "
    "end record's entry count decides nothing",
    "regex_pcre2_limit": "ETM306 documents that PCRE2 patterns are bounded by "
    "its match limit and not reported",
    "regex_huge": "a long alternation is linear under RE2",
}

# Known faults in files this suite may not change, keyed by case and
# guarantee. A fault that is fixed fails its test, so that it leaves this
# table (a strict xfail, by hand).
KNOWN: dict[tuple[str, str], str] = {}
# The cache may gain a tokenizer (at most what the loader reads) and a
# folder with its config.
CACHE_BOUND = DEFAULT_MAX_BYTES + (1 << 20)


class Verdict:
    """Checks one case; known faults are collected, everything else asserts."""

    def __init__(self, name: str):
        self.name = name
        self.known: list[str] = []

    def check(self, guarantee: str, ok: bool, detail: str) -> None:
        fault = KNOWN.get((self.name, guarantee))
        if fault is None:
            assert ok, f"{self.name}: {guarantee}: {detail}"
        elif ok:
            pytest.fail(f"{self.name}: known fault is fixed, drop it: {fault}")
        else:
            self.known.append(f"{guarantee}: {fault}")

    def finish(self) -> None:
        if self.known:
            pytest.xfail("; ".join(self.known))


# -- in process, one case at a time ---------------------------------------------


@pytest.mark.parametrize("name", names())
def test_lint(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = case_named(name)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ETM_CACHE_DIR", str(cache))
    before = digest(case.path)
    outcome = run_main(lint.main, [*LINT, str(case.path)])
    grown = tree_size(cache)
    shutil.rmtree(cache, ignore_errors=True)  # a bomb may have left a gigabyte

    verdict = Verdict(name)
    assert outcome.crash is None, outcome.crash
    assert digest(case.path) == before, "the input changed"
    verdict.check(
        "budget", outcome.seconds < CASE_BUDGET_S, f"took {outcome.seconds:.1f} s"
    )
    verdict.check("cache", grown <= CACHE_BOUND, f"cache grew by {grown} bytes")
    if outcome.code == 2:
        assert outcome.one_line_error("etm-lint: "), outcome.stderr
    else:
        findings = json.loads(outcome.stdout)
        codes = {f["code"] for f in findings}
        assert outcome.code == (1 if _any_error(findings) else 0)
        if name not in CLEAN_IS_RIGHT:
            wanted = set(case.expect) or codes
            verdict.check(
                "reports", bool(codes & wanted), f"wanted {case.expect}, got {codes}"
            )
        problem = _format_problem(findings)
        verdict.check("formats", problem is None, str(problem))
    verdict.finish()


def _any_error(findings: list[dict[str, str]]) -> bool:
    return any(f["severity"] == "error" for f in findings)


def _format_problem(found: list[dict[str, str]]) -> str | None:
    """Why the findings do not render well formed, as UTF-8, in every output
    format; None when they do."""
    rules = load_rules()
    findings = [
        Finding(
            code=f["code"],
            name=f["name"],
            severity=Severity(f["severity"]),
            message=f["message"],
            path=f["path"],
            member=f["member"],
            location=f["location"],
        )
        for f in found
    ]
    for name, formatter in formatters.FORMATS.items():
        text = etm.printable(formatter(findings, rules, False))
        try:
            if name in ("json", "sarif"):
                json.loads(text)
            elif name == "junit":
                ElementTree.fromstring(text)
        except (ValueError, ElementTree.ParseError) as err:
            return f"{name}: {err}"
    return None


@pytest.mark.parametrize("name", names(lambda c: c.part != "folder"))
def test_inspect(name: str) -> None:
    case = case_named(name)
    before = digest(case.path)
    for extra in ([], ["--json"]):
        outcome = run_main(etm.main, ["inspect", *extra, str(case.path)])
        _tool_outcome(outcome, "etm inspect: ")
        if outcome.code == 0 and extra:
            json.loads(outcome.stdout)
    assert digest(case.path) == before


@pytest.mark.parametrize("name", names(lambda c: c.bundle or c.part == "path"))
def test_unpack(name: str, tmp_path: Path) -> None:
    case = case_named(name)
    before = digest(case.path)
    out = tmp_path / "out"
    out.mkdir()
    destination = out / "unpacked"
    outcome = run_main(etm.main, ["unpack", str(case.path), str(destination)])
    _tool_outcome(outcome, "etm unpack: ")
    assert digest(case.path) == before
    left = sorted(os.listdir(out))
    if outcome.code == 2:
        assert left == [], f"a failed unpack left {left}"
        return
    assert left == ["unpacked"]
    for folder, dirs, files in os.walk(destination):
        for entry in dirs + files:
            path = Path(folder) / entry
            assert not path.is_symlink(), f"unpack made a link: {path}"
            assert path.resolve().is_relative_to(destination.resolve())


def _tool_outcome(outcome: Outcome, prefix: str) -> None:
    assert outcome.crash is None, outcome.crash
    assert outcome.code in (0, 2)
    if outcome.code == 2:
        assert outcome.one_line_error(prefix), outcome.stderr
    assert outcome.seconds < CASE_BUDGET_S


# -- real processes -------------------------------------------------------------

SWEEP = """
import json, sys, time, traceback
from pathlib import Path
from etm_lint.cli import lint
from tests.hostile.corpus import build

def resident_peak_kib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec,
    # so it would start at the pytest worker's own peak.
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    return int(hwm.split()[1])

peak = 0
for case in build(Path(sys.argv[1])):
    start = time.perf_counter()
    try:
        code = lint.main(["--no-config", "-o", "/dev/null", str(case.path)])
        crash = None
    except BaseException:
        code, crash = None, traceback.format_exc()
    now = resident_peak_kib()
    print(json.dumps({"case": case.name, "code": code, "crash": crash,
                      "seconds": time.perf_counter() - start,
                      "rss_kib": now, "raised": now > peak}), flush=True)
    peak = max(peak, now)
"""
# Address space, not resident memory: what malloc and mmap may reserve.
ADDRESS_SPACE = 3 << 30
RSS_BOUND_KIB = 1 << 20


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_whole_corpus_in_a_memory_bounded_process(tmp_path: Path) -> None:
    """Every case linted in one real process under a 3 GiB address-space
    limit: none crashes, and the peak resident memory stays under 1 GiB."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    env["ETM_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(
        [sys.executable, "-c", SWEEP, str(tmp_path / "corpus")],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=_limit_address_space,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(corpus())
    crashed = {r["case"]: r["crash"] for r in rows if r["crash"]}
    assert not crashed, crashed
    assert all(r["code"] in (0, 1, 2) for r in rows)
    peaks = [(r["rss_kib"], r["case"]) for r in rows if r["raised"]]
    assert max(peaks)[0] < RSS_BOUND_KIB, f"peak RSS (KiB, case): {peaks[-3:]}"


COMMANDS = {
    "lint": "from etm_lint.cli.lint import entry; entry()",
    "etm": "from etm_lint.cli.etm import entry; entry()",
}
REAL_RUNS = [
    ("lint", [], "path_not_utf8", 1),
    ("lint", [], "meta_lone_surrogate", 1),
    ("lint", ["--output-format", "sarif"], "name_nul", 1),
    ("lint", ["--output-format", "junit"], "tpl_raise_huge", 1),
    ("lint", [], "path_fifo", 2),
    ("lint", [], "folder_config_deep", 1),
    ("lint", [], "overlapping_entries", 1),
    ("etm", ["inspect"], "path_not_utf8", 0),
    ("etm", ["inspect"], "pte_vtable_outside_file", 2),
    ("etm", ["inspect", "--json"], "meta_lone_surrogate", 0),
    ("etm", ["inspect"], "path_dev_zero", 2),
]


@pytest.mark.parametrize(
    ("command", "args", "name", "code"),
    REAL_RUNS,
    ids=[f"{c}-{n}" for c, _, n, _ in REAL_RUNS],
)
def test_real_process(command: str, args: list[str], name: str, code: int) -> None:
    """The console entry points in a real process, stdout strict UTF-8: the
    exit code is the documented one and stderr holds no traceback."""
    argv = [*args, str(case_named(name).path)]
    if command == "lint":
        argv = ["--no-config", *argv]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    result = subprocess.run(
        [sys.executable, "-c", COMMANDS[command], *argv],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        timeout=120,
        preexec_fn=_limit_address_space,
    )
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in stderr, stderr
    assert result.returncode == code, stderr
    if code == 2:
        assert len(stderr.splitlines()) == 1, stderr
