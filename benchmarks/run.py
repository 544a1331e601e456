"""All benchmarks in one command; prints each ratio beside its target.

    python -m benchmarks.run             # 1 MB, 100 MB and 1 GB bundles
    python -m benchmarks.run --smoke     # seconds: the example bundles, no export

The full run builds its bundles on first use (``benchmarks/models.py``: a
few minutes and about 3.7 GB under ``~/.cache/etm-lint-bench``, or
``--cache``) and rewrites ``docs/performance.md`` from what it measured.
Every ratio is taken between figures of this one run, on this machine.

The exit status is 1 when a measured process failed (a lint crash, an
export error); missed targets are printed, and fail the run only with
``--strict``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from benchmarks import bench_golden, bench_lint, bench_tools, models, report
from benchmarks.measure import UNKNOWN, ratio_text, size_text
from benchmarks.report import Check

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DOCS = REPO / "docs" / "performance.md"
STARTUP_BUNDLE = REPO / "fixtures" / "good.etm"  # the small fixture, lint-clean
SKIPPABLE = ("hashes", "tools", "golden", "harness")
FOLDER = "folder"  # a loose-files layout, beside models.LAYOUTS
LINT_TARGET = 1.5
HASH_TARGET = 1.3
HASH_JUDGED_FROM = 100 * 10**6  # bytes
STARTUP_TARGET = 0.5
DECODE_TARGET = 0.97  # fixture / direct decode tokens/s, at least
OPEN_TARGET = 1.05  # bundle in the cache / loose files, at most
HARNESS_SIZE = "100mb"  # generation there takes seconds
GOLDEN_BUNDLE = EXAMPLES / "stories260K.etm"
# Bytes read from a bundle may exceed its flatbuffers and small members by
# the XNNPACK graph descriptions the program rules read; never by weights.
FLOOR_TARGET = 2.0


@dataclass(frozen=True)
class Subject:
    """A bundle or loose folder to lint: its label and weights layout."""

    label: str
    layout: str
    path: Path


@dataclass(frozen=True)
class Results:
    mode: str
    subjects: tuple[Subject, ...]
    lint: tuple[bench_lint.LintRow, ...]
    hashes: tuple[bench_lint.HashRow, ...]
    tools: bench_tools.ToolsResult | None
    start: bench_lint.StartupRow
    golden: tuple[bench_golden.GoldenRow, ...]
    harness: bench_golden.HarnessResult | None
    builds: tuple[models.Built, ...]
    load: tuple[float, float]  # 1-minute load average before and after


def smoke_subjects(space: bench_lint.Workspace) -> list[Subject]:
    inside = Subject("stories260K", "inside", EXAMPLES / "stories260K.etm")
    external = Subject("stories260K_ext", "external", EXAMPLES / "stories260K_ext.etm")
    return [inside, external, unpacked(inside, space, None)]


def full_subjects(
    cache: Path | None, sizes: Sequence[str], space: bench_lint.Workspace
) -> tuple[list[Subject], list[models.Built]]:
    root = models.cache_root(cache)
    builds = [
        models.ensure(root, size, layout) for layout in models.LAYOUTS for size in sizes
    ]
    subjects = [Subject(f"{b.size}-{b.layout}", b.layout, b.bundle) for b in builds]
    # The same programs as loose files, as `etm-lint FOLDER` reads them.
    inside = [s for s in subjects if s.layout == "inside"]
    hf = models.tokenizer_folder(root)
    ends = {inside[0].label: inside[0], inside[-1].label: inside[-1]}
    subjects += [unpacked(subject, space, hf) for subject in ends.values()]
    return subjects, builds


def unpacked(subject: Subject, space: bench_lint.Workspace, hf: Path | None) -> Subject:
    """A bundle's members as loose files, written by the real ``etm unpack``."""
    folder = space.folder / f"{subject.label}-loose"
    unpack = [*bench_lint.console("etm"), "unpack", str(subject.path), str(folder)]
    sample = space.run(unpack)
    if sample.returncode != 0:
        raise RuntimeError(f"etm unpack {subject.path} failed: {sample.stderr}")
    if hf is not None:
        # The template and special tokens live in these, beside the tokenizer.
        for name in ("tokenizer_config.json", "generation_config.json"):
            shutil.copyfile(hf / name, folder / name)
    return Subject(f"{subject.label} folder", FOLDER, folder)


@dataclass(frozen=True)
class Plan:
    """How much work each benchmark does: the full run, or seconds of smoke."""

    golden_counts: tuple[int, ...]
    golden_tokens: int
    harness_tokens: int
    harness_runs: int
    harness_open_runs: int


FULL_PLAN = Plan((1, 10, 100), 32, 256, 7, 41)
SMOKE_PLAN = Plan((1, 2), 8, 8, 1, 1)


def measure_all(
    mode: str,
    subjects: Sequence[Subject],
    builds: Sequence[models.Built],
    repeat: int,
    space: bench_lint.Workspace,
    skip: Sequence[str] = (),
) -> Results:
    plan = SMOKE_PLAN if mode == "smoke" else FULL_PLAN
    load_before = os.getloadavg()[0]
    _log(f"linting {len(subjects)} bundles and folders, {repeat + 1} rounds")
    pairs = [(subject.label, subject.path) for subject in subjects]
    lint = bench_lint.lint_costs(pairs, repeat, space)
    hashes = []
    for subject in [] if "hashes" in skip else _largest(subjects):
        _log(f"hashing {subject.label}")
        hashes.append(bench_lint.hashing(subject.label, subject.path, repeat, space))
    tools = None
    program = None if "tools" in skip else _tools_program(subjects, builds)
    if program is not None:
        _log(f"reading {program} with etm inspect, the runtime and exir")
        tools = bench_tools.compare(program, repeat, space)
    _log("start-up")
    start = bench_lint.startup(STARTUP_BUNDLE, repeat, space)
    golden: list[bench_golden.GoldenRow] = []
    if "golden" not in skip:
        counts = ", ".join(map(str, plan.golden_counts))
        _log(f"golden files of {counts} cases on {GOLDEN_BUNDLE.name}")
        golden = bench_golden.golden_costs(
            GOLDEN_BUNDLE, plan.golden_counts, plan.golden_tokens, repeat, space
        )
    harness = None
    if "harness" not in skip:
        chosen = _harness_bundle(subjects, builds)
        _log(f"the harness against TextLLMRunner on {chosen}")
        harness = bench_golden.harness(
            chosen,
            plan.harness_tokens,
            plan.harness_runs,
            plan.harness_open_runs,
            space,
        )
    return Results(
        mode=mode,
        subjects=tuple(subjects),
        lint=tuple(lint),
        hashes=tuple(hashes),
        tools=tools,
        start=start,
        golden=tuple(golden),
        harness=harness,
        builds=tuple(builds),
        load=(load_before, os.getloadavg()[0]),
    )


def _tools_program(
    subjects: Sequence[Subject], builds: Sequence[models.Built]
) -> Path | None:
    """The kept 1 GB program; in smoke mode, the example's unpacked program."""
    kept = [b.program for b in builds if b.program is not None]
    if kept:
        return kept[0]
    if builds:
        return None
    folders = [s.path for s in subjects if s.layout == FOLDER]
    programs = sorted(p for folder in folders for p in folder.glob("*.pte"))
    return programs[0] if programs else None


def _harness_bundle(
    subjects: Sequence[Subject], builds: Sequence[models.Built]
) -> Path:
    """The 100 MB bundle with its weights inside, else the smallest such bundle."""
    for build in builds:
        if build.size == HARNESS_SIZE and build.layout == "inside":
            return build.bundle
    bundles = [s.path for s in subjects if s.layout == "inside"]
    return min(bundles, key=lambda p: p.stat().st_size)


def _largest(subjects: Sequence[Subject]) -> list[Subject]:
    """The largest bundle of each layout."""
    chosen: dict[str, Subject] = {}
    for subject in subjects:
        if subject.layout == FOLDER:
            continue
        best = chosen.get(subject.layout)
        if best is None or subject.path.stat().st_size > best.path.stat().st_size:
            chosen[subject.layout] = subject
    return list(chosen.values())


# -- checks ------------------------------------------------------------------------


def checks(results: Results) -> list[Check]:
    found = _lint_checks(results) + _hash_checks(results)
    if results.tools is not None:
        found += _tool_checks(results.tools)
    lint = results.start.lint
    name = f"start-up: etm-lint {results.start.path.name}"
    target = f"< {STARTUP_TARGET} s"
    found += [
        Check(f"{name}, median wall", f"{lint.wall:.3f} s", target,
              lint.wall < STARTUP_TARGET),
        Check(f"{name}, fastest wall", f"{lint.fastest:.3f} s", target,
              lint.fastest < STARTUP_TARGET),
        Check(f"{name}, median CPU (user + system)", f"{lint.cpu:.3f} s",
              "reported", None),
    ]  # fmt: skip
    return found + _golden_checks(results) + _harness_checks(results)


def _golden_checks(results: Results) -> list[Check]:
    if len(results.golden) < 2:
        return []
    wall, cpu = bench_golden.per_case(results.golden)
    small, big = results.golden[0], results.golden[-1]
    name = (
        f"golden tests, each added case ({small.cases} to {big.cases} cases, "
        f"{big.tokens} new tokens each)"
    )
    return [Check(name, f"{wall:.3f} s wall, {cpu:.3f} s CPU", "reported", None)]


def _harness_paired(data: dict[str, Any], name: str) -> list[Check]:
    """The pair-by-pair figures, where bench_harness reports them."""
    found = []
    if "decode_ratio_paired" in data:
        low, high = data.get("decode_ratio_range") or (0.0, 0.0)
        found.append(
            Check(
                f"harness decode tokens/s, median of paired ratios, {name}",
                f"{data['decode_ratio_paired']:.3f} (pairs {low:.3f}-{high:.3f})",
                "reported",
                None,
            )
        )
    if "cpu_ratio_paired" in data:
        found.append(
            Check(
                f"harness CPU time per generation, fixture / TextLLMRunner, {name}",
                f"{data['cpu_ratio_paired']:.3f}",
                "reported",
                None,
            )
        )
    return found


def _harness_checks(results: Results) -> list[Check]:
    harness = results.harness
    if harness is None:
        return []
    data = harness.data
    name = Path(harness.bundle).parent.name or Path(harness.bundle).name
    if not data:
        return [Check(f"harness on {name}", f"failed: {harness.error}", "runs", False)]
    decode, ttft, opened = data["decode_ratio"], data["ttft_ratio"], data["open_ratio"]
    return [
        Check(
            f"harness decode tokens/s, etm_model fixture / TextLLMRunner, {name}",
            f"{decode:.3f}",
            f">= {DECODE_TARGET}",
            decode >= DECODE_TARGET,
        ),
        *_harness_paired(data, name),
        Check(
            f"harness time to first token, fixture / TextLLMRunner, {name}",
            f"{ttft:.3f}",
            "reported",
            None,
        ),
        Check(
            f"open a bundle in the cache / load the loose files, {name}",
            f"{opened:.3f}",
            f"<= {OPEN_TARGET}",
            opened <= OPEN_TARGET,
        ),
    ]


def _lint_checks(results: Results) -> list[Check]:
    rows = {row.label: row for row in results.lint}
    found = []
    for layout in (*models.LAYOUTS, FOLDER):
        group = [rows[s.label] for s in results.subjects if s.layout == layout]
        if len(group) < 2:
            continue
        small = min(group, key=lambda r: r.anatomy.file_size)
        big = max(group, key=lambda r: r.anatomy.file_size)
        found += _scale_checks(small, big)
    return found


def _scale_checks(small: bench_lint.LintRow, big: bench_lint.LintRow) -> list[Check]:
    pair = f"{big.label} / {small.label}"
    grow = big.anatomy.weights / max(small.anatomy.weights, 1)
    wall, memory = big.wall / small.wall, big.max_rss / small.max_rss
    cpu = big.cpu / small.cpu
    target = f"<= {LINT_TARGET}x"
    found = [
        Check(f"lint wall time, {pair}", ratio_text(wall), target, wall <= LINT_TARGET),
        Check(f"lint CPU time, {pair}", ratio_text(cpu), target, cpu <= LINT_TARGET),
        Check(
            f"lint peak memory, {pair}",
            ratio_text(memory),
            target,
            memory <= LINT_TARGET,
        ),
    ]
    if big.from_bundle != UNKNOWN and small.from_bundle > 0:
        read = big.from_bundle / small.from_bundle
        label = f"bytes read from the input, {pair} (weights grow {grow:.0f}x)"
    else:
        read = big.rchar / small.rchar
        label = f"rchar, {pair} (weights grow {grow:.0f}x)"
    found.append(Check(label, ratio_text(read), target, read <= LINT_TARGET))
    if big.from_bundle != UNKNOWN:
        floor = big.from_bundle / big.anatomy.floor
        found.append(
            Check(
                f"bytes read from {big.label} / its flatbuffers and small members "
                f"({size_text(big.from_bundle)} of {size_text(big.anatomy.file_size)})",
                ratio_text(floor),
                f"<= {FLOOR_TARGET}x",
                floor <= FLOOR_TARGET,
            )
        )
    return found


def _hash_checks(results: Results) -> list[Check]:
    found = []
    for row in results.hashes:
        # On a small file the lint's own start-up, not hashing, is the time.
        judged = row.path.stat().st_size >= HASH_JUDGED_FROM
        for state, lint, sha in (
            ("page cache warm", row.lint_warm, row.sha_warm),
            ("file evicted", row.lint_cold, row.sha_cold),
        ):
            found.append(
                Check(
                    f"etm-lint --verify-hashes / sha256sum, {row.label}, {state}",
                    ratio_text(lint / sha),
                    f"<= {HASH_TARGET}x" if judged else "reported (small file)",
                    lint / sha <= HASH_TARGET if judged else None,
                )
            )
        found.append(
            Check(
                f"etm-lint --verify-hashes / reading the file (dd), {row.label}, "
                "file evicted",
                ratio_text(row.lint_cold / row.read_cold),
                "reported",
                None,
            )
        )
    return found


def _tool_checks(tools: bench_tools.ToolsResult) -> list[Check]:
    base = tools.rows[0]
    found = []
    for row in tools.rows[1:]:
        found.append(
            Check(f"{row.name} / etm inspect, wall", ratio_text(row.wall / base.wall),
                  "reported", None)
        )  # fmt: skip
        found.append(
            Check(f"{row.name} / etm inspect, peak RSS",
                  ratio_text(row.max_rss / base.max_rss), "reported", None)
        )  # fmt: skip
    if tools.constants_agree is not None:
        agree = tools.constants_agree
        found.append(
            Check(
                "constants: etm inspect's reading equals the runtime's execution",
                "yes" if agree else "no",
                "yes",
                agree,
            )
        )
    return found


def failures(results: Results) -> list[str]:
    """Processes that did not finish as they should (not missed targets)."""
    bad = [
        f"etm-lint {row.label}: exit {row.returncode}"
        for row in results.lint
        if row.returncode not in (0, 1)
    ]
    bad += [f"--verify-hashes {r.label}: exit {r.returncode}"
            for r in results.hashes if r.returncode not in (0, 1)]  # fmt: skip
    if results.start.returncode not in (0, 1):
        bad.append(f"start-up lint: exit {results.start.returncode}")
    if results.tools is not None:
        bad += [f"{r.name}: exit {r.returncode}"
                for r in results.tools.rows if r.returncode != 0]  # fmt: skip
    bad += [f"golden tests, {row.cases} cases: exit {row.returncode}"
            for row in results.golden if row.returncode != 0]  # fmt: skip
    harness = results.harness
    if harness is not None and (harness.returncode != 0 or not harness.data):
        bad.append(f"bench_harness: exit {harness.returncode} {harness.error}")
    return bad


# -- rendering ---------------------------------------------------------------------


def tables(results: Results, found: Sequence[Check]) -> list[report.Table]:
    chosen = [report.checks_table(found), report.lint_table(results.lint)]
    if any(row.reads for row in results.lint):
        chosen.append(report.reads_table(results.lint))
    if results.hashes:
        chosen.append(report.hash_table(results.hashes))
    if results.tools is not None:
        chosen.append(report.tools_table(results.tools))
    chosen.append(report.startup_table(results.start))
    if results.golden:
        chosen.append(report.golden_table(results.golden))
    if results.harness is not None and results.harness.data:
        chosen.append(report.harness_table(results.harness))
    if results.builds:
        chosen.append(builds_table(results.builds))
    return chosen


def builds_table(builds: Sequence[models.Built]) -> report.Table:
    return report.Table(
        title="Building the bundles (real ExecuTorch export, cached)",
        headers=("bundle", "parameters", "export wall", "export peak RSS", "file"),
        rows=tuple(
            (
                f"{b.size}-{b.layout}",
                f"{models.SIZES[b.size].parameters() / 1e6:.1f} M",
                report.seconds(b.export_seconds),
                size_text(b.export_peak_rss),
                size_text(b.bundle.stat().st_size),
            )
            for b in builds
        ),
    )


def machine() -> str:
    cpu = "unknown CPU"
    memory = 0
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.is_file():
        names = [ln for ln in cpuinfo.read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    if meminfo.is_file():
        memory = int(meminfo.read_text().split()[1]) * 1024
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in ("etm-lint", "executorch", "torch", "tokenizers")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {size_text(memory)} RAM; "
        f"Python {platform.python_version()}; {versions}"
    )


def load_text(results: Results) -> str:
    before, after = results.load
    return (
        f"Load average (1 min) {before:.1f} before measuring, {after:.1f} after, "
        f"on {os.cpu_count()} cores"
    )


def _version(name: str) -> str:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return "absent"


def render_text(results: Results, found: Sequence[Check], command: str) -> str:
    head = (
        f"etm-lint benchmarks ({results.mode}): {command}\n{machine()}\n"
        f"{load_text(results)}"
    )
    return "\n\n".join([head, *(report.text(t) for t in tables(results, found))])


def render_markdown(results: Results, found: Sequence[Check], command: str) -> str:
    today = datetime.date.today().isoformat()
    intro = (
        "# Performance\n\n"
        f"Generated by `{command}` on {today}; do not edit by hand, rerun it.\n"
        f"Machine: {machine()}.\n{load_text(results)}.\n\n" + EXPLANATION
    )
    body = "\n\n".join(report.markdown(t) for t in tables(results, found))
    return f"{intro}\n{body}\n"


EXPLANATION = """\
Every figure is one whole process, measured by the kernel for that process
alone (`benchmarks/measure.py`): wall time from fork to exit, peak resident
memory from `wait4`, bytes read from `/proc/<pid>/io`. Times are medians of
several runs after a warm-up, the bundles taking turns; peak memory is the
largest of them. **CPU** is user plus system time: other work on a shared
machine stretches wall time much more than CPU time, so when the load
average above is high, CPU time is the steadier comparison.

- **rchar** counts every byte the process got from read-like system calls,
  whether the page cache or the disk served it. Most of it is Python
  loading its modules (`.pyc` files) and the tokenizer loaders reading the
  tokenizer from the member cache; the table "What the lint reads, by file"
  splits it up.
- **read_bytes** counts bytes the kernel fetched from the block device. With
  the bundle in the page cache (warm) it is 0 whatever the lint reads,
  which is why it says little on its own; **read_bytes cold** is the same
  lint right after the input's own pages were dropped from the page cache
  (`posix_fadvise` DONTNEED on those files only; nothing system-wide is
  dropped), so it shows what the lint really fetched from disk, the
  kernel's read-ahead included.
- **read from input** is the bytes the lint read from the bundle file itself
  (for a folder, from the folder's files), counted per file with
  `strace -y` (n/a without strace).
- **flatbuffers + small members** is what the lint is designed to read: the
  zip directory, `metadata.json`, the (compressed) tokenizer, the program's
  header and flatbuffer, and the `.ptd` headers and flatbuffers. The program
  rules also read the XNNPACK graph descriptions inside delegate payloads
  (not their packed weights), which explains the rest.
- **weights** is the segment data of the program and of the `.ptd` files:
  what the lint must not read unless asked to verify hashes.
- **member cache** is the tokenizer, copied once out of the bundle into
  etm's content-addressed cache (native loaders take paths) and read from
  there by the runtime's loader and the reference tokenizer.

The bundles are 3-layer Llama programs with random weights, built by
`benchmarks/models.py` with the real ExecuTorch export (XNNPACK), once with
the weights inside the program and once in a `.ptd`; all carry the same
32000-token BPE tokenizer and chat template, so only the weights differ.
The folder rows lint the same programs as loose files (what `etm unpack`
writes, plus the Hugging Face `tokenizer_config.json` and
`generation_config.json`). Hash verification is compared with `sha256sum`
over the whole bundle and with `dd` reading it to `/dev/null` after
eviction, the disk's own speed.

Golden-test cost is a whole `pytest --etm examples/stories260K.etm
FILE.golden.yaml` process on files of 1, 10 and 100 cases that
`benchmarks/bench_golden.py` writes and records once; each case is greedy
with a fixed number of new tokens, and speed thresholds are off so each
case generates once. The harness comparison is
`python -m benchmarks.bench_harness` on the 100 MB bundle: in one process,
the `etm_model` fixture's generation against `TextLLMRunner` called
directly on the same files (medians of several long generations, the two
sides alternating), and opening a bundle whose members are already in the
cache against loading the same files loose.

The machine is shared: other sessions' tests and exports ran during the
measurements (see the load average above), which stretches wall times and
makes them vary from run to run; the ratios are taken between figures
measured side by side, the inputs taking turns, so that load hits both
sides alike.

Linting a loose folder (the "folder" rows) has no `metadata.json` to read:
`etm-lint FOLDER` builds the metadata a pack would write, sizing the
program and the `.ptd` files without reading them (their hashes are computed
only with `--verify-hashes`), so a folder costs about what its bundle does.
"""


# -- command line ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="full runs take minutes the first time (exports), then about one",
    )
    parser.add_argument("--smoke", action="store_true", help="example bundles only")
    parser.add_argument("--cache", type=Path, help="where bundles are built")
    parser.add_argument("--sizes", default=",".join(models.SIZES))
    parser.add_argument("--repeat", type=int, help="timed runs per figure")
    parser.add_argument("--docs", type=Path, help=f"Markdown report (full: {DOCS})")
    parser.add_argument("--no-docs", action="store_true", help="write no Markdown")
    parser.add_argument("--json", type=Path, help="write the raw results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a miss")
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated parts to leave out: {', '.join(SKIPPABLE)}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.run", *(argv or sys.argv[1:])])
    repeat = args.repeat or (1 if args.smoke else 5)
    builds: list[models.Built] = []
    mode = "smoke" if args.smoke else "full"
    skip = models.split(args.skip, SKIPPABLE)
    with tempfile.TemporaryDirectory(prefix="etm-bench-") as folder:
        space = bench_lint.Workspace(Path(folder))
        if args.smoke:
            subjects = smoke_subjects(space)
        else:
            sizes = models.split(args.sizes, list(models.SIZES))
            subjects, builds = full_subjects(args.cache, sizes, space)
        results = measure_all(mode, subjects, builds, repeat, space, skip)
    found = checks(results)
    print(render_text(results, found, command))
    _write_outputs(args, results, found, command)
    bad = failures(results)
    for line in bad:
        print(f"failed: {line}", file=sys.stderr)
    missed = args.strict and any(c.passed is False for c in found)
    return 1 if bad or missed else 0


def _write_outputs(
    args: argparse.Namespace, results: Results, found: Sequence[Check], command: str
) -> None:
    docs = args.docs or (None if args.smoke else DOCS)
    if docs is not None and not args.no_docs:
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(render_markdown(results, found, command), encoding="utf-8")
        _log(f"wrote {docs}")
    if args.json is not None:
        data = {"results": asdict(results), "checks": [asdict(c) for c in found]}
        args.json.write_text(json.dumps(data, indent=2, default=str))


def _log(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
