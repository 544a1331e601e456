"""ETM3xx: the tokenizer, as the ExecuTorch runner loads it.

The runner tries loaders in a fixed order (Tekken, Hugging Face, tiktoken,
SentencePiece, llama2.c) and takes the vocabulary size from the tokenizer,
never from the program; nothing compares the two at run time.
"""

from __future__ import annotations

from collections.abc import Iterator

from etm_lint.errors import EtmError
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.rules.program import logits_size
from etm_lint.lint.target import Target

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def _member(target: Target) -> str | None:
    entry = target.tokenizer_entry
    return entry["member"] if entry else None


@rule("ETM301", "tokenizer-unloadable", ERROR, "the runtime cannot load the tokenizer")
def tokenizer_unloadable(target: Target) -> Iterator[Issue]:
    """The tokenizer member does not load with the loader the ExecuTorch
    runner picks for it (pytorch-tokenizers, the code the runner links).

    Why: the runner fails at start-up, or (for some malformed files) the app
    aborts inside the loader.

    Fix: ship the tokenizer file the model was trained with, in a format the
    runner reads: `tokenizer.json`, a tiktoken or SentencePiece `.model`, a
    llama2.c `.bin`, or a Tekken `tekken.json`.

    Failing: a truncated `tokenizer.json`.
    Passing: the model's own `tokenizer.json`.
    """
    if target.tokenizer_error is not None:
        yield Issue(target.tokenizer_error, _member(target))


@rule(
    "ETM302", "vocab-exceeds-program", ERROR, "tokenizer ids the program cannot score"
)
def vocab_exceeds_program(target: Target) -> Iterator[Issue]:
    """The tokenizer produces token ids at or past the width of the
    program's logits (its vocabulary).

    Why: the runner takes the vocabulary size from the tokenizer; a prompt
    token past the embedding table reads out of bounds and crashes, and
    sampling reads past the logits.

    Fix: pair the program with the tokenizer it was trained with, or export
    the program with the tokenizer's vocabulary size.

    Failing: a 32,064-token tokenizer with a program scoring 32,000 ids.
    Passing: both 32,064.
    """
    program, tokenizer = target.program, target.tokenizer
    if program is None or tokenizer is None:
        return
    width = logits_size(program)
    ids = tokenizer.max_id + 1
    if width is not None and ids > width:
        yield Issue(
            f"tokenizer has {ids} token ids, program scores {width}",
            _member(target),
        )


@rule("ETM303", "vocab-padding", INFO, "program scores ids no token uses")
def vocab_padding(target: Target) -> Iterator[Issue]:
    """The program's logits are wider than the tokenizer's vocabulary.

    Why: harmless on its own (models pad their embedding to a multiple of
    64 or 128), but the padding rows can never be produced by the
    tokenizer; a big gap hints at the wrong tokenizer.

    Fix: nothing when the padding is deliberate.

    Reported: a 32,000-token tokenizer with 32,064 logits.
    Passing: equal sizes.
    """
    program, tokenizer = target.program, target.tokenizer
    if program is None or tokenizer is None:
        return
    width = logits_size(program)
    ids = tokenizer.max_id + 1
    if width is not None and ids < width:
        yield Issue(
            f"program scores {width} ids, the tokenizer uses {ids}; "
            f"{width - ids} padding rows",
            _member(target),
        )


@rule("ETM304", "tokenizer-kind-mismatch", ERROR, "the runner reads another format")
def tokenizer_kind_mismatch(target: Target) -> Iterator[Issue]:
    """`metadata.json` declares one tokenizer kind, and the runner's loader
    order picks another for the file.

    Why: the runner tries loaders in order and keeps the first that accepts
    the file; a tiktoken file named as SentencePiece is read as tiktoken,
    with other ids and other special tokens than the bundle promises.

    Fix: declare the kind the file really is (`etm pack` detects it).

    Failing: `"kind": "sentencepiece"` on a tiktoken file.
    Passing: `"kind": "tiktoken"` on it.
    """
    tokenizer, entry = target.tokenizer, target.tokenizer_entry
    if tokenizer is None or entry is None:
        return
    if tokenizer.kind.value != entry.get("kind"):
        yield Issue(
            f"metadata.json says {entry.get('kind')}, the runner loads it as "
            f"{tokenizer.kind.value}",
            _member(target),
        )


@rule("ETM305", "tokenizer-disagrees", WARNING, "runtime and reference tokenize apart")
def tokenizer_disagrees(target: Target) -> Iterator[Issue]:
    """The runtime's tokenizer (pytorch-tokenizers) and the reference library
    (Hugging Face `tokenizers`, `sentencepiece`, `tiktoken`) turn the same
    sample text into different ids, or the runner's streamed pieces spell
    other text.

    Why: the model was trained on the reference's ids; on the device it sees
    others, and quality drops on exactly those texts (often accents, CJK,
    emoji or whitespace runs).

    Fix: use a tokenizer format whose runtime loader matches the reference
    (for example SentencePiece `.model` rather than a converted
    `tokenizer.json`), or report the difference upstream.

    Failing: "café" encoded to other ids by the runtime.
    Passing: equal ids on every sample text.
    """
    from etm_lint.tokenizer import SAMPLE_TEXTS, compare, reference

    tokenizer, path = target.tokenizer, target.tokenizer_file
    if tokenizer is None or path is None:
        return
    try:
        ref = reference(str(path), kind=tokenizer.kind)
        if ref is None:
            return
        # Text the vocabulary cannot spell at all (accents in an ASCII-only
        # vocabulary) is lost either way; that is no disagreement.
        texts = [t for t in SAMPLE_TEXTS if _round_trips(ref, t)]
        mismatches = compare(tokenizer, ref, texts)
    except EtmError as err:
        said = target.member_terms(str(err))
        yield Issue(f"reference tokenizer cannot read it: {said}", _member(target))
        return
    differing = list(dict.fromkeys(m.text for m in mismatches))
    if differing:
        first = mismatches[0]
        yield Issue(
            f"{len(differing)} of {len(texts)} sample texts differ; first, the "
            f"{first.aspect} of {_short(first.text)}: runtime "
            f"{_short(first.runtime)}, reference {_short(first.reference)}",
            _member(target),
        )


def _round_trips(ref: object, text: str) -> bool:
    from etm_lint.tokenizer import ReferenceTokenizer

    assert isinstance(ref, ReferenceTokenizer)
    decoded = ref.decode(ref.encode(text))
    return decoded.strip() == text.strip()


@rule("ETM306", "tokenizer-regex-hazard", WARNING, "a pre-tokenizer regex is unsafe")
def tokenizer_regex_hazard(target: Target) -> Iterator[Issue]:
    """A pre-tokenizer regular expression that neither RE2 nor PCRE2
    compiles falls back, in the runtime, to std::regex, which backtracks
    without limit. (Patterns RE2 refuses but PCRE2 takes, such as GPT-2's
    look-ahead, are common and bounded by PCRE2's match limit: not reported.)

    Why: a crafted or merely long prompt can hang the device's tokenizer.

    Fix: use a pattern RE2 accepts (no look-around or backreferences).

    Failing: a `tokenizer.json` whose Split pattern PCRE2 refuses (a `\\u`
    escape, for one).
    Passing: the GPT-2 or Llama 3 patterns.
    """
    tokenizer = target.tokenizer
    if tokenizer is None:
        return
    for hazard in tokenizer.hazards:
        if "std::regex" in hazard:
            yield Issue(hazard, _member(target))


def _short(value: object, limit: int = 40) -> str:
    # repr keeps the message on one line whatever the text holds.
    text = value if isinstance(value, str) else str(value)
    shown = repr(text if len(text) <= limit else text[:limit] + "…")
    return shown if isinstance(value, str) else shown[1:-1]
