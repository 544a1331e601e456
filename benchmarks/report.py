"""Turning benchmark results into tables: aligned text or Markdown.

The same tables feed the terminal and ``docs/performance.md``, so the two
never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.bench_golden import GoldenRow, HarnessResult
from benchmarks.bench_lint import READ_KINDS, HashRow, LintRow, StartupRow
from benchmarks.bench_tools import ToolsResult
from benchmarks.measure import ratio_text, size_text


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Check:
    """One ratio or figure measured in this run, beside its target."""

    name: str
    measured: str
    target: str
    passed: bool | None  # None: reported, no target


def text(table: Table) -> str:
    cells = [table.headers, *table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]
    lines = [table.title]
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.headers) + " |"]
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def verdict(passed: bool | None) -> str:
    return {True: "ok", False: "MISSED", None: "-"}[passed]


def lint_table(rows: Sequence[LintRow]) -> Table:
    return Table(
        title="Lint cost by bundle size (etm-lint BUNDLE, whole process)",
        headers=(
            "bundle", "file", "weights", "wall (median)", "CPU (median)",
            "peak RSS", "rchar",
            "read_bytes warm", "read_bytes cold", "read from input",
            "flatbuffers + small members", "exit", "findings",
        ),
        rows=tuple(
            (
                r.label, size_text(r.anatomy.file_size),
                size_text(r.anatomy.weights), seconds(r.wall), seconds(r.cpu),
                size_text(r.max_rss), size_text(r.rchar),
                size_text(r.read_bytes), size_text(r.cold_read_bytes),
                size_text(r.from_bundle), size_text(r.anatomy.floor),
                str(r.returncode), r.findings,
            )
            for r in rows
        ),
    )  # fmt: skip


def reads_table(rows: Sequence[LintRow]) -> Table:
    return Table(
        title="What the lint reads, by file (strace; rchar for comparison)",
        headers=("bundle", *READ_KINDS, "total", "rchar"),
        rows=tuple(
            (
                r.label,
                *(size_text(r.reads[kind]) for kind in READ_KINDS),
                size_text(sum(r.reads.values())),
                size_text(r.rchar),
            )
            for r in rows
            if r.reads
        ),
    )


def hash_table(rows: Sequence[HashRow]) -> Table:
    return Table(
        title="Hash verification (etm-lint --verify-hashes) against sha256sum",
        headers=(
            "bundle", "file", "etm-lint warm", "sha256sum warm", "ratio warm",
            "etm-lint cold", "sha256sum cold", "ratio cold", "dd cold (disk)",
            "etm-lint / dd cold",
        ),
        rows=tuple(
            (
                r.label, size_text(r.size), seconds(r.lint_warm),
                seconds(r.sha_warm), ratio_text(r.lint_warm / r.sha_warm),
                seconds(r.lint_cold), seconds(r.sha_cold),
                ratio_text(r.lint_cold / r.sha_cold),
                f"{seconds(r.read_cold)}, {rate(r.size, r.read_cold)}",
                ratio_text(r.lint_cold / r.read_cold),
            )
            for r in rows
        ),
    )  # fmt: skip


def rate(size: int, wall: float) -> str:
    return f"{size / wall / 1e6:.0f} MB/s"


def tools_table(result: ToolsResult) -> Table:
    base = result.rows[0]
    return Table(
        title=f"Reading one program, whole process ({result.program.name}, "
        f"{size_text(result.size)})",
        headers=(
            "reader", "wall", "peak RSS", "of which import", "of which work",
            "wall / etm inspect", "memory / etm inspect", "exit",
        ),
        rows=tuple(
            (
                r.name, seconds(r.wall), size_text(r.max_rss),
                seconds(r.import_seconds), seconds(r.work_seconds),
                ratio_text(r.wall / base.wall),
                ratio_text(r.max_rss / base.max_rss), str(r.returncode),
            )
            for r in result.rows
        ),
    )  # fmt: skip


def startup_table(row: StartupRow) -> Table:
    return Table(
        title=f"Start-up: etm-lint {row.path.name}, whole process",
        headers=("run", "wall (median)", "wall (fastest)", "CPU (median)",
                 "peak RSS", "exit"),
        rows=(
            ("etm-lint, member cache warm", seconds(row.lint.wall),
             seconds(row.lint.fastest), seconds(row.lint.cpu),
             size_text(row.max_rss), str(row.returncode)),
            ("etm-lint, first run (empty member cache)", seconds(row.first.wall),
             "", seconds(row.first.cpu), "", ""),
            ("python -c pass (the interpreter alone)",
             seconds(row.interpreter.wall), seconds(row.interpreter.fastest),
             seconds(row.interpreter.cpu), "", ""),
        ),
    )  # fmt: skip


def golden_table(rows: Sequence[GoldenRow]) -> Table:
    return Table(
        title="Golden-prompt tests against the number of cases "
        "(pytest --etm BUNDLE FILE.golden.yaml, whole process)",
        headers=("cases", "new tokens per case", "wall (median)", "CPU (median)",
                 "peak RSS", "passed", "exit"),
        rows=tuple(
            (str(r.cases), str(r.tokens), seconds(r.wall), seconds(r.cpu),
             size_text(r.max_rss), str(r.passed), str(r.returncode))
            for r in rows
        ),
    )  # fmt: skip


def harness_table(result: HarnessResult) -> Table:
    data = result.data
    rows = []
    for key in ("fixture", "direct"):
        side = data[key]
        rows.append(
            (side["name"], f"{side['decode_tokens_per_s']:.1f}",
             f"{side['ttft_s'] * 1e3:.2f} ms", str(side["tokens"]), str(side["runs"]))
        )  # fmt: skip
    rows.append(
        ("open + load, bundle members in the cache", "",
         f"{data['open_bundle_s'] * 1e3:.1f} ms", "", str(result.open_runs))
    )  # fmt: skip
    rows.append(
        ("open + load, the same files loose", "",
         f"{data['open_loose_s'] * 1e3:.1f} ms", "", str(result.open_runs))
    )  # fmt: skip
    return Table(
        title=f"The harness against TextLLMRunner, one process "
        f"(python -m benchmarks.bench_harness --bundle {result.bundle})",
        headers=("side", "decode tokens/s (median)", "first token / load (median)",
                 "tokens", "runs"),
        rows=tuple(rows),
    )  # fmt: skip


def checks_table(checks: Sequence[Check]) -> Table:
    return Table(
        title="Ratios measured in this run, beside their targets",
        headers=("measure", "measured", "target", "verdict"),
        rows=tuple((c.name, c.measured, c.target, verdict(c.passed)) for c in checks),
    )
