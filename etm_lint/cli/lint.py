"""``etm-lint``: check .etm bundles (or folders of loose files) for release."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from etm_lint import __version__
from etm_lint.errors import EtmError
from etm_lint.lint import config as config_module
from etm_lint.lint import formatters
from etm_lint.lint.engine import Selection, load_rules, unknown_codes
from etm_lint.lint.model import Finding, Rule, Severity
from etm_lint.lint.target import LintOptions, Target

DESCRIPTION = """\
Check ExecuTorch LLM bundles (.etm) before they ship: the zip container,
the program, the tokenizer, BOS/EOS and special tokens, the chat template
and the generation settings. A PATH may also be a folder of loose files
(a .pte, optional .ptd files, a tokenizer and Hugging Face config files).

exit status: 0 no findings at the --fail-on level, 1 findings at or above
it, 2 usage or I/O trouble.
"""
EPILOG = """\
examples:
  etm-lint model.etm
  etm-lint --select ETM4 --output-format json model.etm
  etm-lint --output-format sarif -o etm.sarif --verify-hashes model.etm
  etm-lint --explain ETM402
  etm-lint --fix --fixed-copy fixed.etm model.etm

configuration: [tool.etm-lint] in the nearest pyproject.toml (select,
ignore, extend-select, fail-on, verify-hashes, per-bundle-ignores).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etm-lint",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="bundles or folders")
    parser.add_argument(
        "--select", metavar="CODES", help="comma-separated codes or prefixes to run"
    )
    parser.add_argument(
        "--extend-select", metavar="CODES", help="codes to add to the selection"
    )
    parser.add_argument("--ignore", metavar="CODES", help="codes or prefixes to skip")
    parser.add_argument(
        "--output-format",
        choices=sorted(formatters.FORMATS),
        default="text",
        help="report format (default: text)",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the report to FILE, not stdout"
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "info"),
        help="lowest severity that makes the exit status 1 (default: error)",
    )
    parser.add_argument(
        "--exit-zero", action="store_true", help="exit 0 even when findings fail"
    )
    parser.add_argument(
        "--statistics", action="store_true", help="count findings per rule"
    )
    parser.add_argument(
        "--verify-hashes",
        action="store_true",
        default=None,
        help="stream sha256 over program and weights too (small members always)",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="pyproject.toml to read (default: search up)"
    )
    parser.add_argument(
        "--no-config", action="store_true", help="ignore pyproject.toml"
    )
    parser.add_argument(
        "--explain", metavar="CODE", help="print what a rule checks and how to fix it"
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="list every rule and exit"
    )
    parser.add_argument(
        "--fix",
        action="store_true",
        help="write a fixed copy where the fix is mechanical (needs --fixed-copy)",
    )
    parser.add_argument(
        "--fixed-copy", metavar="OUT", help="where --fix writes; never the input"
    )
    parser.add_argument(
        "--no-color", action="store_true", help="no colour even on a terminal"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    return parser


def _split(value: str | None) -> list[str]:
    return [p.strip().upper() for p in (value or "").split(",") if p.strip()]


def explain(rules: dict[str, Rule], code: str) -> str:
    found = rules.get(code.upper())
    if found is None:
        raise EtmError(f"no rule {code!r}; see etm-lint --list-rules")
    header = (
        f"{found.code} {found.name} ({found.family}, {found.severity.value}"
        f"{', fixable' if found.fixable else ''})"
    )
    return f"{header}\n\n{found.summary}.\n\n{found.explanation}\n"


def list_rules(rules: dict[str, Rule]) -> str:
    rows = [
        f"{r.code}  {r.severity.value:<7}  {r.name:<32} {r.summary}"
        for r in sorted(rules.values(), key=lambda r: r.code)
    ]
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args, parser)
    except EtmError as err:
        print(f"etm-lint: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("etm-lint: interrupted", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    rules = load_rules()
    if args.explain:
        sys.stdout.write(explain(rules, args.explain))
        return 0
    if args.list_rules:
        sys.stdout.write(list_rules(rules))
        return 0
    if not args.paths:
        parser.error("give at least one bundle or folder to check")
    if args.fix and not args.fixed_copy:
        parser.error("--fix writes a copy: name it with --fixed-copy OUT")
    if args.fixed_copy and not args.fix:
        parser.error("--fixed-copy names where --fix writes: add --fix")
    if args.fix and len(args.paths) > 1:
        parser.error("--fix makes one fixed copy: give one bundle")
    # (--fixed-copy is guarded where the copy is written, in lint.fix.)
    _refuse_overwriting_inputs(args.output, args.paths)

    config = _config(args)
    selection = Selection(
        select=tuple(_split(args.select) or config.select),
        ignore=tuple(_split(args.ignore) or config.ignore),
        extend_select=tuple(_split(args.extend_select) or config.extend_select),
    )
    typos = unknown_codes(
        [*selection.select, *selection.ignore, *selection.extend_select], rules
    )
    if typos:
        raise EtmError(f"no rule matches {typos[0]!r}; see etm-lint --list-rules")
    verify = (
        args.verify_hashes
        if args.verify_hashes is not None
        else (bool(config.verify_hashes))
    )
    options = LintOptions(verify_hashes=verify)
    fail_on = Severity(args.fail_on or config.fail_on or "error")

    findings: list[Finding] = []
    chosen = [r for c, r in sorted(rules.items()) if selection.chooses(c)]
    for path in args.paths:
        if not os.path.exists(path):
            raise EtmError(f"{path}: no such file or folder")
        skip = config.ignores_for(path)
        target = Target(path, options)
        try:
            for rule in chosen:
                if not any(rule.code.startswith(code) for code in skip):
                    findings.extend(rule.run(target))
            if args.fix:
                from etm_lint.lint.fix import write_fixed_copy

                note = write_fixed_copy(target, Path(args.fixed_copy))
                print(f"etm-lint: {note}", file=sys.stderr)
        finally:
            target.close()

    colour = _colour(args)
    report = formatters.FORMATS[args.output_format](findings, rules, colour)
    if args.statistics:
        report = (
            formatters.statistics(findings)
            if args.output_format == "text"
            else (report)
        )
    _emit(report, args.output)
    if args.exit_zero:
        return 0
    failing = any(f.severity.rank >= fail_on.rank for f in findings)
    return 1 if failing else 0


def _config(args: argparse.Namespace) -> config_module.Config:
    if args.no_config:
        return config_module.Config()
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise EtmError(f"{path}: no such configuration file")
        return config_module.load(path)
    return config_module.load(config_module.find_pyproject(Path.cwd()))


def _colour(args: argparse.Namespace) -> bool:
    if args.no_color or args.output or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return sys.stdout.isatty()


def _refuse_overwriting_inputs(written: str | None, paths: Sequence[str]) -> None:
    if written is None:
        return
    for path in paths:
        try:
            same = os.path.samefile(written, path)
        except OSError:
            continue
        if same:
            raise EtmError(f"{written}: is the input {path}; refusing to overwrite it")


def _emit(report: str, output: str | None) -> None:
    from etm_lint.cli.etm import printable, write_out

    if output is None:
        write_out(report)
        return
    try:
        Path(output).write_text(printable(report), encoding="utf-8")
    except OSError as err:
        raise EtmError(f"{output}: cannot write the report ({err.strerror})") from None


def entry() -> None:
    from etm_lint.cli.etm import exit_on_sigterm

    exit_on_sigterm()
    sys.exit(main())


if __name__ == "__main__":
    entry()
