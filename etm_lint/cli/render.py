"""``etm render``: the exact prompt a chat template makes.

Without a bundle, a template file and a context file (as llama.cpp's chat
tests write them: ``messages``, ``add_generation_prompt``, ``bos_token``,
``eos_token`` and optionally ``tools``; other keys become template
variables) let template authors check a template before packing. On a
bundle, its own template and special tokens render a list of messages, and
``--tokens`` adds the ids the runtime's tokenizer makes of the prompt.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format.source import read_text_file

EXAMPLES = """\
examples:
  etm render --template chat_template.jinja --context simple.json --now 2024-07-26
  etm render model.etm --messages chat.json --tokens
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "render",
        help="print the exact prompt a chat template makes",
        description=(__doc__ or "").replace("``", "`"),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bundle", nargs="?", metavar="BUNDLE", help="an .etm bundle")
    parser.add_argument("--template", metavar="FILE", help="a .jinja template")
    parser.add_argument(
        "--context", metavar="FILE.json", help="messages, tokens and flags"
    )
    parser.add_argument(
        "--messages", metavar="FILE.json", help="a JSON list of messages"
    )
    parser.add_argument(
        "--no-generation-prompt",
        action="store_true",
        help="with --messages: leave out the assistant header",
    )
    parser.add_argument(
        "--name", metavar="NAME", help="which of several named templates"
    )
    parser.add_argument(
        "--now",
        metavar="YYYY-MM-DD",
        help="the date strftime_now sees (default: today), for reproducible renders",
    )
    parser.add_argument(
        "--tokens",
        action="store_true",
        help="with a bundle: also print the token ids of the prompt",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    now = _date(args.now)
    if args.bundle is None:
        if not (args.template and args.context):
            raise EtmError("give a BUNDLE, or --template FILE and --context FILE")
        if args.tokens:
            raise EtmError("--tokens needs a bundle (its tokenizer)")
        prompt = _render_context(Path(args.template), Path(args.context), args, now)
        sys.stdout.write(prompt)
        return 0
    prompt, tokens = _render_bundle(args, now)
    sys.stdout.write(prompt)
    if tokens is not None:
        sys.stdout.write(f"\n--- {len(tokens)} tokens ---\n{json.dumps(tokens)}\n")
    return 0


def _render_context(
    template_path: Path, context_path: Path, args: argparse.Namespace, now: datetime
) -> str:
    from etm_lint.template import UNSET, render

    template = _read(template_path)
    context = _json(context_path)
    if not isinstance(context, dict) or not isinstance(context.get("messages"), list):
        raise EtmError(f"{context_path}: expected an object with a messages list")
    context = dict(context)
    messages = context.pop("messages")
    tokens = {
        name: context.pop(name)
        for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        if isinstance(context.get(name), str)
    }
    return render(
        template,
        messages,
        add_generation_prompt=bool(context.pop("add_generation_prompt", False)),
        tools=context.pop("tools", UNSET),
        documents=context.pop("documents", UNSET),
        special_tokens=tokens,
        extra=context,
        now=now,
    )


def _render_bundle(
    args: argparse.Namespace, now: datetime
) -> tuple[str, list[int] | None]:
    from etm_lint.lint.target import LintOptions, Target
    from etm_lint.runtime.bundle import render_chat

    if not args.messages:
        raise EtmError("with a bundle, give --messages FILE.json")
    messages = _json(Path(args.messages))
    if not isinstance(messages, list):
        raise EtmError(f"{args.messages}: expected a JSON list of messages")
    target = Target(args.bundle, LintOptions())
    try:
        if target.valid_metadata is None:
            reason = target.open_error or target.metadata_error or "invalid metadata"
            raise EtmError(f"{args.bundle}: {reason}; run etm-lint on it")
        chat_template = target.chat_template
        if chat_template is None:
            raise EtmError(f"{args.bundle}: no chat template (a base model)")
        prompt = render_chat(
            args.bundle,
            chat_template,
            target.special_tokens,
            messages,
            add_generation_prompt=not args.no_generation_prompt,
            name=args.name,
            now=now,
        )
        tokens = None
        if args.tokens:
            document = target.valid_metadata
            tokenizer = target.tokenizer
            if tokenizer is None:
                reason = target.tokenizer_error or (
                    f"metadata.json names {document['tokenizer']['member']!r}, "
                    "which is not in the bundle"
                )
                raise EtmError(f"{args.bundle}: {reason}; run etm-lint on it")
            tokens = tokenizer.encode(
                prompt, bos=document.get("num_bos", 0), eos=document.get("num_eos", 0)
            )
        return prompt, tokens
    finally:
        target.close()


def _date(value: str | None) -> datetime:
    if value is None:
        return datetime.now()
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise EtmError(f"--now {value!r}: expected YYYY-MM-DD") from None


# Templates and contexts are small; a larger file is not one of them.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def _read(path: Path) -> str:
    return read_text_file(path, MAX_INPUT_BYTES)


def _json(path: Path) -> Any:
    try:
        return json.loads(_read(path))
    except json.JSONDecodeError as err:
        raise EtmError(f"{path}: not JSON ({err.msg}, line {err.lineno})") from None
    except (RecursionError, ValueError):
        raise EtmError(f"{path}: JSON too deep or a number too long to read") from None
