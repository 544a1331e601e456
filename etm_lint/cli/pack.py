"""``etm pack``: build a bundle from loose files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format.metadata import MAX_METADATA_BYTES
from etm_lint.format.pack import pack_bundle
from etm_lint.format.source import read_text_file

HELP = """\
Build an .etm bundle. Special tokens, chat template and sampling defaults
come from a Hugging Face model folder (--hf-dir: tokenizer_config.json,
chat_template.jinja or chat_template.json, special_tokens_map.json,
generation_config.json) and/or explicit options, which win.

The program and weights are STORED and 16 KiB aligned; the output is
written atomically and is byte-identical for identical inputs.
"""
EXAMPLE = """\
example:
  etm pack --program model.pte --tokenizer tokenizer.json --hf-dir hf/ -o model.etm
  etm pack --program model.pte --weights model.ptd --tokenizer tokenizer.model \\
      --bos '<s>' --eos '</s>' --num-bos 1 -o model.etm
"""
# A template larger than metadata.json may be cannot be stored in one.
MAX_TEMPLATE_BYTES = MAX_METADATA_BYTES


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "pack",
        help="build a bundle",
        description=HELP,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.etm")
    parser.add_argument("--program", required=True, metavar="PTE")
    parser.add_argument(
        "--weights", action="append", default=[], metavar="PTD", help="repeatable"
    )
    parser.add_argument("--tokenizer", required=True, metavar="FILE")
    parser.add_argument("--hf-dir", metavar="DIR", help="Hugging Face model folder")
    parser.add_argument("--chat-template", metavar="FILE", help="a .jinja template")
    parser.add_argument("--name", help="display name stored in metadata")
    parser.add_argument("--bos", help="BOS token text")
    parser.add_argument("--eos", action="append", help="EOS token text (repeatable)")
    parser.add_argument("--pad", help="padding token text")
    parser.add_argument("--num-bos", type=int, help="BOS tokens prepended to a prompt")
    parser.add_argument("--num-eos", type=int, help="EOS tokens appended to a prompt")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument(
        "--stop", action="append", help="stop string (repeatable)", metavar="TEXT"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    template = None
    if args.chat_template:
        template = _read_template(Path(args.chat_template), Path(args.output))
    tokens: dict[str, Any] = {}
    if args.bos is not None:
        tokens["bos"] = args.bos
    if args.eos:
        tokens["eos"] = args.eos
    if args.pad is not None:
        tokens["pad"] = args.pad
    generation = {
        key: value
        for key, value in (
            ("temperature", args.temperature),
            ("top_p", args.top_p),
            ("top_k", args.top_k),
            ("max_new_tokens", args.max_new_tokens),
            ("stop", args.stop),
        )
        if value is not None
    }
    document = pack_bundle(
        args.output,
        program=args.program,
        tokenizer=args.tokenizer,
        weights=args.weights,
        hf_dir=args.hf_dir,
        chat_template=template,
        special_tokens=tokens,
        num_bos=args.num_bos,
        num_eos=args.num_eos,
        generation=generation,
        name=args.name,
    )
    members = 2 + len(document.get("weights", []))
    print(f"wrote {args.output} ({members} members + metadata.json)", file=sys.stderr)
    return 0


def _read_template(path: Path, output: Path) -> str:
    if output.exists() and path.exists() and os.path.samefile(path, output):
        raise EtmError(f"{output}: refusing to overwrite an input (--chat-template)")
    return read_text_file(path, MAX_TEMPLATE_BYTES)
