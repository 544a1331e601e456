"""``etm``: pack, inspect, unpack, render and run .etm bundles."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from etm_lint import __version__
from etm_lint.cli import inspect as inspect_command
from etm_lint.cli import pack as pack_command
from etm_lint.cli import render as render_command
from etm_lint.cli import run as run_command
from etm_lint.cli import unpack as unpack_command
from etm_lint.errors import EtmError

DESCRIPTION = """\
Work with single-file ExecuTorch LLM bundles (.etm).

  etm pack      build a bundle from a program, weights, a tokenizer and settings
  etm inspect   show what is inside a bundle, a .pte or a .ptd
  etm unpack    write a bundle's loose files into a new folder
  etm render    print the exact prompt a chat template makes
  etm run       generate text with the ExecuTorch LLM runner

Run `etm COMMAND --help` for each command's options. Checking a bundle for
release is `etm-lint`.
"""

COMMANDS = {
    "pack": pack_command,
    "inspect": inspect_command,
    "unpack": unpack_command,
    "render": render_command,
    "run": run_command,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etm",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
        return code
    except EtmError as err:
        print(f"etm {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"etm {args.command}: interrupted", file=sys.stderr)
        return 2


def print_json(value: object) -> None:
    write_out(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_out(text: str) -> None:
    """Write to stdout whatever the text holds.

    A file name that is not UTF-8 reaches Python as lone surrogates, and so
    can a string in a hostile file; a strict stdout would raise on them.
    """
    sys.stdout.write(printable(text))


def printable(text: str) -> str:
    """``text`` with lone surrogates written as escapes (``\\udcff``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that cleanup (``finally``, the
    atomic writer's removal of its temporary file) runs as it does on
    Ctrl-C; by default the process would die on the spot."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def entry() -> None:
    exit_on_sigterm()
    sys.exit(main())


if __name__ == "__main__":
    entry()
