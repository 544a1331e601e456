"""ETM6xx: the default generation settings in metadata.json."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from etm_lint.errors import EtmError
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.target import Target

ERROR, WARNING = Severity.ERROR, Severity.WARNING
METADATA = "metadata.json"


def _generation(target: Target) -> dict[str, Any]:
    document = target.valid_metadata or {}
    settings: dict[str, Any] = document.get("generation", {})
    return settings


def context_length(target: Target) -> int | None:
    program = target.program
    if program is None:
        return None
    constants = program.constants
    for name in ("get_max_context_len", "get_max_seq_len"):
        value = constants.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@rule("ETM601", "generation-out-of-range", ERROR, "a sampling setting out of range")
def generation_out_of_range(target: Target) -> Iterator[Issue]:
    """A default sampling setting is outside the range a sampler accepts:
    `temperature` below 0, `top_p` outside (0, 1], `top_k` below 0,
    `max_new_tokens` below 1.

    Why: apps pass these straight to the runner; a negative temperature or
    a `top_p` of 0 gives nonsense or an error on the device.

    Fix: use `temperature: 0` for greedy decoding, `top_p` in (0, 1],
    `top_k >= 0` (0 disables it), `max_new_tokens >= 1`.

    Failing: `"generation": {"temperature": -1, "top_p": 1.5}`.
    Passing: `"generation": {"temperature": 0.7, "top_p": 0.9}`.
    """
    settings = _generation(target)
    checks = (
        ("temperature", lambda v: v >= 0, "must be 0 (greedy) or more"),
        ("top_p", lambda v: 0 < v <= 1, "must be in (0, 1]"),
        ("top_k", lambda v: v >= 0, "must be 0 (off) or more"),
        ("max_new_tokens", lambda v: v >= 1, "must be 1 or more"),
    )
    for key, ok, expected in checks:
        value = settings.get(key)
        if value is not None and not ok(value):
            yield Issue(
                f"{key} is {value}; it {expected}",
                METADATA,
                location=f"/generation/{key}",
            )


@rule(
    "ETM602",
    "max-new-tokens-exceeds-context",
    WARNING,
    "max_new_tokens longer than the context",
)
def max_new_tokens_exceeds_context(target: Target) -> Iterator[Issue]:
    """`max_new_tokens` is larger than the program's context
    (`get_max_context_len`).

    Why: the runner silently caps generation at the context minus the
    prompt, so the setting promises output the device never produces.

    Fix: set `max_new_tokens` below the context, leaving room for prompts.

    Failing: `max_new_tokens: 4096` with a 512-token context.
    Passing: `max_new_tokens: 256` with a 512-token context.
    """
    value = _generation(target).get("max_new_tokens")
    context = context_length(target)
    if isinstance(value, int) and context is not None and value >= context:
        yield Issue(
            f"max_new_tokens is {value}, but the program's context holds {context} "
            "tokens, prompt included",
            METADATA,
            location="/generation/max_new_tokens",
        )


@rule("ETM603", "stop-string-unencodable", WARNING, "a stop string that cannot match")
def stop_string_unencodable(target: Target) -> Iterator[Issue]:
    """A stop string is empty, or the runtime's tokenizer cannot spell it
    (it encodes to the unknown token, or decodes back to other text).

    Why: the stop string never matches generated text, so generation runs
    on past the point the app meant to stop at.

    Fix: use stop strings made of text the tokenizer can produce.

    Failing: `"stop": [""]`, or a string of characters the vocabulary lacks.
    Passing: `"stop": ["\\n\\nUser:"]`.
    """
    stops = _generation(target).get("stop", [])
    tokenizer = target.tokenizer
    for index, text in enumerate(stops):
        where = f"/generation/stop/{index}"
        if not text:
            yield Issue("stop string is empty; it matches nothing", METADATA, where)
            continue
        if tokenizer is None:
            continue
        try:
            ids = tokenizer.encode(text)
        except EtmError as err:
            yield Issue(f"stop string cannot be encoded: {err}", METADATA, where)
            continue
        unknown = getattr(tokenizer, "unk_id", None)
        if unknown is not None and unknown in ids:
            yield Issue(
                f"stop string {text!r} encodes to the unknown token", METADATA, where
            )
