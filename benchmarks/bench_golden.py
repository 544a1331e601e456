"""Golden-prompt tests against the number of cases, and the harness's overhead.

Two measurements, each of a real process:

- ``golden_costs``: a whole ``pytest --etm BUNDLE FILE.golden.yaml`` process
  on golden files of 1, 10 and 100 cases (fewer in smoke mode). The cases
  are written by this module (distinct prompts, greedy, a fixed number of new
  tokens); the largest file is recorded once with ``--etm-update-goldens``
  (not timed; it also warms the page cache and the member cache), the
  smaller files are its first cases, and each file is run ``repeat`` times
  against what was recorded, the files taking turns. Speed thresholds are
  switched off, so each case generates exactly once. What a case adds is
  the slope between the smallest and the largest file; the fixed cost is
  pytest, the plugin and the model's load.
- ``harness``: ``python -m benchmarks.bench_harness`` (another owner's
  script, run as is): decode tokens/s and time to first token through the
  ``etm_model`` fixture against ``TextLLMRunner`` called directly in the
  same process, and opening a bundle whose members are in the cache against
  loading loose files. Its JSON is kept whole.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import measure
from benchmarks.bench_lint import Workspace

# Openings the cases' prompts cycle through, each made distinct by a number.
OPENINGS = (
    "Once upon a time",
    "The little dog",
    "One day, a girl named",
    "In the park there was",
    "Tom and his mom",
)


@dataclass(frozen=True)
class GoldenRow:
    cases: int
    tokens: int  # max new tokens per case
    wall: float  # median, seconds
    cpu: float  # median, seconds
    max_rss: int
    passed: int  # cases pytest reported as passed in the last timed run
    returncode: int


def golden_text(cases: int, tokens: int) -> str:
    """A golden file of ``cases`` cases with nothing recorded yet."""
    lines = [
        "# Written by benchmarks/bench_golden.py; recorded by --etm-update-goldens.",
        "defaults:",
        f"  max_new_tokens: {tokens}",
        "cases:",
    ]
    for index in range(cases):
        prompt = f"{OPENINGS[index % len(OPENINGS)]} {index}"
        lines += [
            f"  - name: case-{index:03d}",
            f"    prompt: {json.dumps(prompt)}",
            "    expect:",
            "      text:",
            "      token_ids:",
        ]
    return "\n".join(lines) + "\n"


def _pytest_argv(bundle: Path, golden: Path, update: bool) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(golden.parent),
        "--etm",
        str(bundle),
        "--etm-min-decode-tps",
        "0",
        "--etm-max-ttft",
        "0",
        str(golden),
    ]
    return [*argv, "--etm-update-goldens"] if update else argv


def _passed(sample: measure.Sample) -> int:
    for line in reversed(sample.stdout.strip().splitlines()):
        words = line.replace(",", " ").split()
        if "passed" in words:
            return int(words[words.index("passed") - 1])
    return 0


def golden_costs(
    bundle: Path, counts: Sequence[int], tokens: int, repeat: int, space: Workspace
) -> list[GoldenRow]:
    """One row per golden file size; the files take turns run by run."""
    bundle = bundle.resolve()
    # The largest file is recorded once, by the plugin; each smaller file is
    # its first cases, recorded values included.
    largest = max(counts)
    recorded = space.folder / f"golden-{largest}" / "bench.golden.yaml"
    recorded.parent.mkdir(exist_ok=True)
    recorded.write_text(golden_text(largest, tokens), encoding="utf-8")
    record = space.run(_pytest_argv(bundle, recorded, update=True))
    if record.returncode != 0:
        tail = (record.stdout + record.stderr)[-1500:]
        raise RuntimeError(f"recording {largest} golden cases failed:\n{tail}")
    document = yaml.safe_load(recorded.read_text(encoding="utf-8"))
    files: dict[int, Path] = {}
    for count in counts:
        path = space.folder / f"golden-{count}" / "bench.golden.yaml"
        if count != largest:
            path.parent.mkdir(exist_ok=True)
            part = {**document, "cases": document["cases"][:count]}
            path.write_text(yaml.safe_dump(part, sort_keys=False), encoding="utf-8")
        files[count] = path
    runs: dict[int, list[measure.Sample]] = {count: [] for count in counts}
    for _ in range(repeat):
        for count, path in files.items():
            runs[count].append(space.run(_pytest_argv(bundle, path, update=False)))
    return [
        GoldenRow(
            cases=count,
            tokens=tokens,
            wall=measure.median_wall(samples),
            cpu=measure.median_cpu(samples),
            max_rss=measure.peak_rss(samples),
            passed=_passed(samples[-1]),
            returncode=max(s.returncode for s in samples),
        )
        for count, samples in runs.items()
    ]


def per_case(rows: Sequence[GoldenRow]) -> tuple[float, float]:
    """Seconds of wall and CPU time each added case costs (the slope)."""
    small, big = rows[0], rows[-1]
    added = max(big.cases - small.cases, 1)
    return (big.wall - small.wall) / added, (big.cpu - small.cpu) / added


# -- the harness against the runner ---------------------------------------------------


@dataclass(frozen=True)
class HarnessResult:
    bundle: Path
    tokens: int
    runs: int
    open_runs: int
    wall: float  # the whole benchmark process
    returncode: int
    data: dict[str, Any]  # bench_harness's JSON, empty when it failed
    error: str


def harness(
    bundle: Path, tokens: int, runs: int, open_runs: int, space: Workspace
) -> HarnessResult:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.bench_harness",
        "--bundle",
        str(bundle),
        "--tokens",
        str(tokens),
        "--runs",
        str(runs),
        "--open-runs",
        str(open_runs),
        "--json",
    ]
    argv[4] = str(bundle.resolve())
    repo = Path(__file__).resolve().parent.parent
    sample = measure.run(argv, env=space.env, cwd=repo)
    data: dict[str, Any] = {}
    error = ""
    try:
        data = json.loads(sample.stdout)
    except ValueError:
        error = (sample.stderr.strip().splitlines() or ["no output"])[-1]
    return HarnessResult(
        bundle=bundle,
        tokens=tokens,
        runs=runs,
        open_runs=open_runs,
        wall=sample.wall,
        returncode=sample.returncode,
        data=data,
        error=error,
    )
