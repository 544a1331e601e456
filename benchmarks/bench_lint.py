"""What one ``etm-lint`` process costs, against the size of the bundle.

Three measurements, each of the real console script in its own process:

- ``lint_costs``: wall and CPU time, peak memory and bytes read of
  ``etm-lint BUNDLE`` (or ``etm-lint FOLDER``), warm (medians of several
  runs, the inputs taking turns) and once with the input evicted from the
  page cache, so ``read_bytes`` shows real disk reads. With strace present,
  the bytes read are also split by file: the input, the member cache,
  Python's modules, the rest.
- ``hashing``: ``etm-lint --verify-hashes BUNDLE`` against ``sha256sum``
  over the same file, warm and with the file evicted, and against ``dd``
  reading the evicted file, the disk's own speed.
- ``startup``: a whole lint of a small bundle, next to a bare interpreter.

The tool's member cache (``ETM_CACHE_DIR``) is a temporary folder of the
benchmark's, warmed by the first run as a user's would be.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import measure

CONSOLE_MODULES = {"etm-lint": "etm_lint.cli.lint", "etm": "etm_lint.cli.etm"}
INPUT = "the bundle (or folder)"
MEMBER_CACHE = "member cache"
PYTHON = "Python modules"
OTHER = "other"
READ_KINDS = (INPUT, MEMBER_CACHE, PYTHON, OTHER)


def console(name: str) -> list[str]:
    """The installed console script beside this interpreter, else its module."""
    script = Path(sys.executable).parent / name
    if script.is_file():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-c", f"from {CONSOLE_MODULES[name]} import entry; entry()"]


@dataclass(frozen=True)
class Workspace:
    """Where lint runs happen: a cwd without pyproject.toml, a private cache."""

    folder: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ETM_CACHE_DIR"] = str(self.folder / "etm-cache")
        env["NO_COLOR"] = "1"
        return env

    def run(self, argv: list[str]) -> measure.Sample:
        return measure.run(argv, env=self.env, cwd=self.folder)

    def repeat(self, argv: list[str], times: int) -> list[measure.Sample]:
        return measure.repeat(argv, times, env=self.env, cwd=self.folder)


# -- a bundle's anatomy -----------------------------------------------------------


@dataclass(frozen=True)
class Anatomy:
    """Bytes of a bundle (or loose folder) by role, read with etm_lint's readers."""

    file_size: int
    weights: int  # segment data of the program and of every .ptd
    floor: int  # zip directory, small members, program and .ptd flatbuffers


def files_of(path: Path) -> list[Path]:
    """The files a lint of ``path`` may read: the bundle, or a folder's files."""
    if path.is_dir():
        return sorted(p.resolve() for p in path.iterdir() if p.is_file())
    return [path.resolve()]


def anatomy(path: Path) -> Anatomy:
    return _folder_anatomy(path) if path.is_dir() else _bundle_anatomy(path)


def _folder_anatomy(folder: Path) -> Anatomy:
    from etm_lint.format.ptd import read_data_file
    from etm_lint.format.pte import read_program
    from etm_lint.format.source import FileSource

    weights = floor = size = 0
    for path in files_of(folder):
        size += path.stat().st_size
        with FileSource(path) as source:
            if path.suffix == ".pte":
                program = read_program(source)
                weights += program.segment_data_size
                floor += program.program_size
            elif path.suffix == ".ptd":
                data = read_data_file(source)
                weights += data.segment_data_size
                floor += data.flatbuffer_offset + data.flatbuffer_size
            else:
                floor += source.size
    return Anatomy(file_size=size, weights=weights, floor=floor)


def _bundle_anatomy(path: Path) -> Anatomy:
    from etm_lint.format.bundle import Bundle
    from etm_lint.format.ptd import read_data_file
    from etm_lint.format.pte import read_program

    with Bundle(path) as bundle:
        document = json.loads(bundle.metadata_bytes() or b"{}")
        mapped = [document["program"]["member"]]
        program = read_program(bundle.source(mapped[0]))
        weights, floor = program.segment_data_size, program.program_size
        for entry in document.get("weights", []):
            mapped.append(entry["member"])
            data = read_data_file(bundle.source(entry["member"]))
            weights += data.segment_data_size
            floor += data.flatbuffer_offset + data.flatbuffer_size
        ends = [(m.data_offset or 0) + m.compressed_size for m in bundle.members]
        floor += bundle.size - max(ends)  # the central directory
        floor += sum(m.compressed_size for m in bundle.members if m.name not in mapped)
        return Anatomy(file_size=bundle.size, weights=weights, floor=floor)


# -- lint cost ----------------------------------------------------------------------


@dataclass(frozen=True)
class LintRow:
    label: str
    path: Path
    anatomy: Anatomy
    wall: float  # median, seconds
    walls: tuple[float, ...]
    cpu: float  # median, seconds
    max_rss: int  # the largest of the runs
    rchar: int  # median
    read_bytes: int  # median, warm page cache
    cold_read_bytes: int  # bundle evicted first
    cold_wall: float
    reads: dict[str, int]  # bytes read by kind of file (strace), or empty
    returncode: int
    findings: str

    @property
    def from_bundle(self) -> int:
        """Bytes read from the bundle file (or the folder's files)."""
        return self.reads.get(INPUT, measure.UNKNOWN)


def lint_costs(
    subjects: Sequence[tuple[str, Path]], repeat: int, space: Workspace
) -> list[LintRow]:
    """Each bundle linted ``repeat`` times, taking turns, after one warm-up each.

    Taking turns spreads any change in the machine's load over every bundle
    alike, so the ratios between them stay fair.
    """
    runs: dict[str, list[measure.Sample]] = {label: [] for label, _ in subjects}
    for _ in range(repeat + 1):
        for label, path in subjects:
            runs[label].append(space.run(_lint_argv(path)))
    # The first round warmed the page cache and the member cache.
    return [_lint_row(label, path, runs[label][1:], space) for label, path in subjects]


def _lint_argv(path: Path) -> list[str]:
    return [*console("etm-lint"), str(path)]


def _lint_row(
    label: str, path: Path, samples: list[measure.Sample], space: Workspace
) -> LintRow:
    argv = _lint_argv(path)
    for file in files_of(path):
        measure.evict(file)
    cold = space.run(argv)
    return LintRow(
        label=label,
        path=path,
        anatomy=anatomy(path),
        wall=measure.median_wall(samples),
        walls=tuple(s.wall for s in samples),
        cpu=measure.median_cpu(samples),
        max_rss=measure.peak_rss(samples),
        rchar=int(statistics.median(s.rchar for s in samples)),
        read_bytes=int(statistics.median(s.read_bytes for s in samples)),
        cold_read_bytes=cold.read_bytes,
        cold_wall=cold.wall,
        reads=reads_by_kind(argv, path, space),
        returncode=max(s.returncode for s in samples),
        findings=findings(path, space),
    )


def reads_by_kind(argv: list[str], path: Path, space: Workspace) -> dict[str, int]:
    """What ``rchar`` is made of: bytes read per kind of file, by strace."""
    if not measure.strace_available():
        return {}
    inputs = {str(file) for file in files_of(path)}
    cache = str(space.folder / "etm-cache")
    totals = dict.fromkeys(READ_KINDS, 0)
    by_file = measure.bytes_by_file(argv, env=space.env, cwd=space.folder)
    for name, count in by_file.items():
        totals[_kind(name, inputs, cache)] += count
    return totals


def _kind(name: str, inputs: set[str], cache: str) -> str:
    if name in inputs:
        return INPUT
    if name.startswith(cache):
        return MEMBER_CACHE
    if name.endswith((".py", ".pyc")):
        return PYTHON
    return OTHER


def findings(path: Path, space: Workspace) -> str:
    """The lint's verdict in a few words: ``clean`` or codes with counts."""
    sample = space.run([*console("etm-lint"), "--output-format", "json", str(path)])
    if sample.returncode not in (0, 1):
        last = (sample.stderr.strip().splitlines() or ["no output"])[-1]
        return f"crashed (exit {sample.returncode}): {last}"
    codes = Counter(f["code"] for f in json.loads(sample.stdout or "[]"))
    if not codes:
        return "clean"
    return ", ".join(f"{code}x{count}" for code, count in sorted(codes.items()))


# -- hashing -------------------------------------------------------------------------


@dataclass(frozen=True)
class HashRow:
    label: str
    path: Path
    size: int
    lint_warm: float
    sha_warm: float
    lint_cold: float
    sha_cold: float
    read_cold: float  # dd of the file to /dev/null: the disk's own speed
    returncode: int


def hashing(label: str, path: Path, repeat: int, space: Workspace) -> HashRow:
    """Medians of ``repeat`` turns each, warm and with the file evicted."""
    commands = {
        "lint": [*console("etm-lint"), "--verify-hashes", str(path)],
        "sha": ["sha256sum", str(path)],
        "read": ["dd", f"if={path}", "of=/dev/null", "bs=1M"],
    }
    warm: dict[str, list[measure.Sample]] = {"lint": [], "sha": []}
    cold: dict[str, list[measure.Sample]] = {name: [] for name in commands}
    for _ in range(repeat + 1):
        for name in warm:
            warm[name].append(space.run(commands[name]))
    for _ in range(repeat):
        for name, argv in commands.items():
            measure.evict(path)
            cold[name].append(space.run(argv))
    lint_runs = warm["lint"] + cold["lint"]
    return HashRow(
        label=label,
        path=path,
        size=path.stat().st_size,
        # The first warm turn only brought the file into the page cache.
        lint_warm=measure.median_wall(warm["lint"][1:]),
        sha_warm=measure.median_wall(warm["sha"][1:]),
        lint_cold=measure.median_wall(cold["lint"]),
        sha_cold=measure.median_wall(cold["sha"]),
        read_cold=measure.median_wall(cold["read"]),
        returncode=max(s.returncode for s in lint_runs),
    )


# -- start-up --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    wall: float  # median, seconds
    fastest: float  # the shortest wall time: the least disturbed run
    cpu: float  # median, seconds


def timing(samples: Sequence[measure.Sample]) -> Timing:
    return Timing(
        wall=measure.median_wall(samples),
        fastest=min(s.wall for s in samples),
        cpu=measure.median_cpu(samples),
    )


@dataclass(frozen=True)
class StartupRow:
    path: Path
    lint: Timing  # member cache warm
    first: Timing  # empty member cache: the tokenizer is copied out first
    interpreter: Timing  # python -c pass
    max_rss: int
    returncode: int


def startup(path: Path, repeat: int, space: Workspace) -> StartupRow:
    argv = [*console("etm-lint"), str(path)]
    empty = Workspace(space.folder / "first-run")
    empty.folder.mkdir(exist_ok=True)
    first = empty.run(argv)
    samples = space.repeat(argv, repeat)
    bare = space.repeat([sys.executable, "-c", "pass"], repeat)
    return StartupRow(
        path=path,
        lint=timing(samples),
        first=timing([first]),
        interpreter=timing(bare),
        max_rss=measure.peak_rss(samples),
        returncode=max(s.returncode for s in [first, *samples]),
    )
