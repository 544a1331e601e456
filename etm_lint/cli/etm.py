"""``etm``: pack, inspect, unpack, render and run .etm bundles."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from etm_lint import __version__
from etm_lint.cli import inspect as inspect_command
from etm_lint.cli import pack as pack_command
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
    for module in _commands().values():
        module.register(commands)  # type: ignore[attr-defined]
    return parser


def _commands() -> dict[str, object]:
    found: dict[str, object] = dict(COMMANDS)
    for name in ("render", "run"):
        try:
            found[name] = __import__(f"etm_lint.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as err:
            if err.name != f"etm_lint.cli.{name}":
                raise
    return found


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
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def entry() -> None:
    sys.exit(main())
