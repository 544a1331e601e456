"""``etm run``: generate from a bundle with ExecuTorch's LLM runner, streaming.

The text goes to stdout as the runner makes it; a line of speed figures
follows on stderr. The runner's own logs (its pieces, its statistics, the
native loaders' chatter) never reach the terminal: they are captured while
it runs, and the text is written to a copy of stdout saved before.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.format.source import read_text_file

MAX_MESSAGES_BYTES = 16 * 1024 * 1024
# Control characters a terminal would act on (escape sequences, carriage
# return, backspace): a model can emit any of them. Tab and newline pass.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="generate text with the ExecuTorch LLM runner",
        description="Generate from a raw prompt, or from a conversation "
        "rendered with the bundle's chat template, on ExecuTorch's LLM runner. "
        "The text streams to stdout; a line of speed figures (load, time to "
        "first token, decode tokens/s) follows on stderr. Settings left out "
        "take the bundle's (num_bos, num_eos, temperature, max_new_tokens, "
        "stop strings). Needs the runtime extra (torch, executorch).",
    )
    parser.add_argument("bundle", metavar="BUNDLE")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", metavar="TEXT", help="raw prompt text")
    source.add_argument(
        "--messages",
        metavar="FILE",
        help="a JSON list of {role, content} messages ('-' reads stdin)",
    )
    parser.add_argument("--max-new-tokens", type=int, metavar="N")
    parser.add_argument(
        "--temperature", type=float, metavar="T", help="0 is greedy; up to 1"
    )
    parser.add_argument(
        "--stop", action="append", metavar="TEXT", help="a stop string; repeatable"
    )
    parser.add_argument(
        "--no-echo", action="store_true", help="do not print the prompt first"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the whole generation as JSON (text, ids, stop reason, "
        "timing) instead of streaming",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from etm_lint.runtime.runner import check_arguments

    messages = _messages(args.messages) if args.messages is not None else None
    try:
        check_arguments(
            args.prompt or "-",
            args.max_new_tokens,
            args.temperature or 0.0,
            0,
            0,
            tuple(args.stop or ()),
        )
    except ValueError as err:
        raise EtmError(str(err)) from None
    if os.path.isdir(args.bundle):
        raise EtmError(f"{args.bundle}: a folder; etm run takes an .etm bundle")
    if not os.path.exists(args.bundle):
        raise EtmError(f"{args.bundle}: no such file")
    if not os.path.isfile(args.bundle):
        raise EtmError(f"{args.bundle}: not a regular file")
    model = _load(args.bundle)
    echo = args.prompt is not None and not args.no_echo and not args.json
    out = _Output(args.prompt if echo else "")
    try:
        generation = model.generate(
            args.prompt,
            messages=messages,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            stop=args.stop,
            on_text=None if args.json else out.write,
        )
    except ValueError as err:
        raise EtmError(str(err)) from None
    if args.json:
        out.write(json.dumps(_as_json(generation), indent=2, ensure_ascii=False))
    out.end_line()
    out.close()
    name = visible(Path(args.bundle).name)
    print(speed_line(name, generation, model.load_s), file=sys.stderr)
    return 0


def _load(path: str) -> Any:
    try:
        from etm_lint.runtime.bundle import BundleModel

        return BundleModel.load(path)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("torch", "executorch"):
            raise
        raise EtmError(
            f"{err.name} is not installed; etm run needs the runtime extra: "
            "pip install 'etm-lint[runtime]' (from a checkout: pip install "
            "-c constraints.txt -e '.[runtime]')"
        ) from None


def _messages(name: str) -> list[dict[str, Any]]:
    where = "stdin" if name == "-" else name
    if name == "-":
        raw: str | bytes = sys.stdin.buffer.read(MAX_MESSAGES_BYTES + 1)
        if len(raw) > MAX_MESSAGES_BYTES:
            raise EtmError(f"stdin: more than {MAX_MESSAGES_BYTES} bytes")
    else:
        raw = read_text_file(Path(name), MAX_MESSAGES_BYTES)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise EtmError(f"{where}: not JSON ({err})") from None
    if isinstance(document, dict) and "messages" in document:
        document = document["messages"]
    if (
        not isinstance(document, list)
        or not document
        or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in document
        )
    ):
        raise EtmError(f"{where}: expected a list of {{role, content}} messages")
    return document


class _Output:
    """Text to the real stdout, from inside the runner's captured descriptors.

    ``echo`` (the prompt) is written with the first text, so a run that
    fails before generating prints nothing on stdout. On a terminal, control
    characters are shown as ``\\xNN`` escapes; a pipe gets the text as it is.
    """

    def __init__(self, echo: str = "") -> None:
        sys.stdout.flush()
        self._fd = os.dup(sys.stdout.fileno())
        self._terminal = os.isatty(self._fd)
        self._echo = echo
        self._closed = False
        self._last = "\n"

    def write(self, text: str) -> None:
        if self._echo:
            text, self._echo = self._echo + text, ""
        if self._closed or not text:
            return
        if self._terminal:
            text = visible(text)
        data = text.encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except BrokenPipeError:
            # The reader went away (``| head``); the rest is not wanted.
            self._closed = True
            return
        self._last = text[-1]

    def end_line(self) -> None:
        self.write("")
        if self._last != "\n":
            self.write("\n")

    def close(self) -> None:
        os.close(self._fd)


def visible(text: str) -> str:
    """``text`` with the control characters a terminal acts on escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def speed_line(name: str, generation: Any, load_s: float) -> str:
    timing = generation.timing
    return (
        f"{name}: {timing.num_generated} tokens, stopped by {generation.stopped_by}; "
        f"load {load_s:.2f} s, first token {timing.time_to_first_token_s * 1e3:.1f} "
        f"ms, decode {timing.decode_tokens_per_s:.1f} tokens/s"
    )


def _as_json(generation: Any) -> dict[str, Any]:
    timing = generation.timing
    return {
        "prompt": generation.prompt,
        "text": generation.text,
        "token_ids": list(generation.token_ids),
        "prompt_ids": list(generation.prompt_ids),
        "stop_reason": generation.stop_reason,
        "stop_token": generation.stop_token,
        "timing": {
            "load_s": timing.load_s,
            "time_to_first_token_s": timing.time_to_first_token_s,
            "decode_tokens_per_s": timing.decode_tokens_per_s,
            "total_s": timing.total_s,
            "num_generated": timing.num_generated,
        },
    }
