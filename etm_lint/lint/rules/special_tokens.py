"""ETM4xx: BOS, EOS and special tokens, graded by what they do at run time.

The runner takes BOS (and the vocabulary size) from the tokenizer, but EOS
ids from the program's ``get_eos_ids`` when it has one, else the tokenizer's
single EOS. A chat template that ends turns with a token outside that set
makes a model that never stops.
"""

from __future__ import annotations

from collections.abc import Iterator

from etm_lint.errors import EtmError
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.rules.program import int_values, logits_size
from etm_lint.lint.target import Target

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
METADATA = "metadata.json"


def runtime_eos_ids(target: Target) -> set[int] | None:
    """The EOS ids the runner stops on for this bundle."""
    program, tokenizer = target.program, target.tokenizer
    if program is None or tokenizer is None:
        return None
    method = program.method("get_eos_ids")
    if method is not None:
        return set(int_values(method.constant_value))
    return {tokenizer.eos_id}


def token_id(target: Target, text: str) -> int | None:
    """The single id the runtime's tokenizer gives ``text``, or None."""
    tokenizer = target.tokenizer
    if tokenizer is None:
        return None
    if text in tokenizer.special_tokens:
        return tokenizer.special_tokens[text]
    # SentencePiece and llama2.c never match special-token text in a prompt,
    # but their BOS/EOS (and the program's EOS ids) still have a spelling.
    program = target.program
    candidates = [tokenizer.bos_id, tokenizer.eos_id]
    if program is not None:
        candidates += int_values(program.constants.get("get_eos_ids"))
    for candidate in candidates:
        if 0 <= candidate <= tokenizer.max_id:
            try:
                if tokenizer.token_text(candidate) == text:
                    return candidate
            except EtmError:
                continue
    try:
        ids = tokenizer.encode(text)
    except EtmError:
        return None
    return ids[0] if len(ids) == 1 else None


def _eos_texts(target: Target) -> list[str]:
    eos = target.special_tokens.get("eos", [])
    return [t for t in eos if isinstance(t, str)]


def _name(target: Target, token: int) -> str:
    tokenizer = target.tokenizer
    if tokenizer is None:
        return str(token)
    try:
        return f"{token} ({tokenizer.token_text(token)!r})"
    except EtmError:
        return str(token)


@rule("ETM401", "eos-does-not-stop", ERROR, "a declared EOS does not stop generation")
def eos_does_not_stop(target: Target) -> Iterator[Issue]:
    """An EOS token declared in `metadata.json` is not among the ids the
    runner stops on (`get_eos_ids`, or the tokenizer's EOS when the program
    has none).

    Why: the model emits its EOS and the runner keeps generating until the
    token limit, on the device, every time.

    Fix: export the program with `get_eos_ids` listing every EOS id, or
    correct the declared EOS.

    Failing: EOS `<|im_end|>` (id 7) with `get_eos_ids = [2]`.
    Passing: `get_eos_ids = [2, 7]`.
    """
    stops = runtime_eos_ids(target)
    if stops is None:
        return
    for text in _eos_texts(target):
        token = token_id(target, text)
        if token is not None and token not in stops:
            yield Issue(
                f"EOS {text!r} is id {token}, but the runner stops only on "
                f"{sorted(stops)}",
                target.program_member,
            )


@rule("ETM402", "end-of-turn-not-eos", ERROR, "the template's end of turn never stops")
def end_of_turn_not_eos(target: Target) -> Iterator[Issue]:
    """The chat template ends an assistant turn with a marker whose token id
    is not among the ids the runner stops on.

    Why: in a chat app the model answers, emits the end-of-turn marker, and
    the runner goes on generating the user's next turn.

    Fix: add the marker's id to `get_eos_ids` when exporting (Llama 3:
    `<|eot_id|>`; ChatML: `<|im_end|>`), and list it as EOS in the metadata.

    Failing: a ChatML template with `get_eos_ids = [<|endoftext|>]`.
    Passing: `get_eos_ids` holding `<|im_end|>` too.
    """
    from etm_lint.lint.rules.template import turn_marker

    stops = runtime_eos_ids(target)
    marker = turn_marker(target)
    if stops is None or marker is None:
        return
    token = token_id(target, marker)
    if token is None:
        return  # ETM409 reports a marker that is not one token
    if token not in stops:
        yield Issue(
            f"the template ends a turn with {marker!r} (id {token}), but the runner "
            f"stops only on {sorted(stops)}",
            target.program_member,
        )


@rule("ETM403", "extra-eos-id", INFO, "the program stops on an undeclared id")
def extra_eos_id(target: Target) -> Iterator[Issue]:
    """The program's `get_eos_ids` holds an id that `metadata.json` does not
    declare as EOS.

    Why: usually deliberate (llama2.c's story models end on BOS, and many
    chat models stop on both end-of-text and end-of-turn), but an app that
    reads the metadata will not know generation can end there.

    Fix: declare the token as EOS in the metadata, or drop it from
    `get_eos_ids` if it is there by mistake.

    Reported: `get_eos_ids = [1, 2]` with only `</s>` (2) declared.
    Passing: both `<s>` and `</s>` declared.
    """
    program = target.program
    if program is None or target.tokenizer is None:
        return
    method = program.method("get_eos_ids")
    stops = runtime_eos_ids(target)
    if method is None or stops is None:
        return
    declared = {token_id(target, t) for t in _eos_texts(target)}
    for token in sorted(stops - declared):
        what = _name(target, token)
        if token == target.tokenizer.bos_id:
            what += ", the BOS token: the model ends on BOS"
        yield Issue(f"get_eos_ids holds {what}, not declared as EOS", METADATA)


@rule("ETM404", "double-bos", ERROR, "the template and the runner both add BOS")
def double_bos(target: Target) -> Iterator[Issue]:
    """The chat template writes the BOS token into the prompt while the
    bundle asks the runtime to prepend BOS too (`num_bos > 0`).

    Why: the model sees two BOS tokens, a sequence it was never trained on;
    answers degrade quietly.

    Fix: set `num_bos: 0` for a template that writes `{{ bos_token }}`, or
    remove it from the template.

    Failing: a Llama 3 template (`{{ bos_token }}...`) with `num_bos: 1`.
    Passing: the same with `num_bos: 0`.
    """
    from etm_lint.lint.rules.template import probe_prompt

    document = target.valid_metadata
    bos = target.special_tokens.get("bos")
    if document is None or not bos or document.get("num_bos", 0) < 1:
        return
    prompt = probe_prompt(target)
    if prompt is not None and prompt.startswith(bos):
        yield Issue(
            f"the template starts the prompt with {bos!r} and num_bos is "
            f"{document['num_bos']}: the model sees BOS twice",
            METADATA,
            location="/num_bos",
        )


@rule("ETM405", "special-id-out-of-range", ERROR, "a special id outside the vocabulary")
def special_id_out_of_range(target: Target) -> Iterator[Issue]:
    """An id in `get_eos_ids` or `get_bos_id` is negative or not below the
    width of the program's logits.

    Why: the model can never emit it (an EOS that never stops), or the
    runner indexes past the embedding table with it.

    Fix: export the program with the ids of the tokenizer it ships with.

    Failing: `get_eos_ids = [128009]` in a program scoring 32,000 ids.
    Passing: ids below 32,000.
    """
    program = target.program
    if program is None:
        return
    width = logits_size(program)
    if width is None:
        return
    for name in ("get_eos_ids", "get_bos_id"):
        for token in int_values(program.constants.get(name)):
            if not 0 <= token < width:
                yield Issue(
                    f"{name} holds {token}, outside the program's 0..{width - 1}",
                    target.program_member,
                )


@rule("ETM406", "special-token-unknown", ERROR, "a declared token is not one token")
def special_token_unknown(target: Target) -> Iterator[Issue]:
    """A special token declared in `metadata.json` (BOS, an EOS, PAD) is not a
    single token of the runtime's tokenizer.

    Why: the runtime cannot resolve it to an id; it falls back to a guess
    (for a Hugging Face tokenizer, a token whose name contains "bos" or
    "eos", or id 0), and stopping or prompting breaks.

    Fix: declare the token exactly as the tokenizer spells it.

    Failing: `"eos": ["<|im_end|>"]` with a tokenizer that has `<|end|>`.
    Passing: `"eos": ["<|end|>"]`.
    """
    if target.tokenizer is None:
        return
    for key in ("bos", "eos", "pad"):
        value = target.special_tokens.get(key)
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if isinstance(text, str) and token_id(target, text) is None:
                yield Issue(
                    f"{key} {text!r} is not a single token of the tokenizer",
                    METADATA,
                    location=f"/special_tokens/{key}",
                )


@rule("ETM407", "bos-disagrees", WARNING, "BOS differs between program and runtime")
def bos_disagrees(target: Target) -> Iterator[Issue]:
    """The BOS the runtime uses (the tokenizer's) differs from the program's
    `get_bos_id` or from the BOS declared in `metadata.json`.

    Why: the runner ignores `get_bos_id` and prepends the tokenizer's BOS;
    if the model was trained with another one, every prompt starts wrong.

    Fix: make the program, the tokenizer and the metadata agree on BOS.

    Failing: `get_bos_id = 1` with a tokenizer whose BOS is 128000.
    Passing: all three 128000.
    """
    program, tokenizer = target.program, target.tokenizer
    if program is None or tokenizer is None:
        return
    declared = program.constants.get("get_bos_id")
    if isinstance(declared, int) and declared != tokenizer.bos_id:
        yield Issue(
            f"get_bos_id is {_name(target, declared)}, the runtime's BOS is "
            f"{_name(target, tokenizer.bos_id)}",
            target.program_member,
        )
    bos = target.special_tokens.get("bos")
    if isinstance(bos, str):
        token = token_id(target, bos)
        if token is not None and token != tokenizer.bos_id:
            yield Issue(
                f"metadata BOS {bos!r} is id {token}, the runtime's BOS is "
                f"{_name(target, tokenizer.bos_id)}",
                METADATA,
            )


@rule(
    "ETM408", "loose-tokenizer-differs", INFO, "the file alone resolves BOS/EOS apart"
)
def loose_tokenizer_differs(target: Target) -> Iterator[Issue]:
    """Loaded by itself (as apps load loose files today), the tokenizer file
    resolves BOS or EOS to other ids than the bundle gives it.

    Why: the bundle is right, but an app that ships the same
    `tokenizer.json` without its config guesses BOS/EOS from token names
    (and can pick EOS = BOS). Worth knowing before anyone unpacks it.

    Fix: nothing in the bundle; apps should load the bundle, or a folder
    with `tokenizer_config.json` beside `tokenizer.json`.

    Reported: Llama 2's `tokenizer.json` alone gives BOS = EOS = 0.
    Passing: a SentencePiece `.model`, which carries its own ids.
    """
    with_config, alone = target.tokenizer, target.tokenizer_alone
    if with_config is None or alone is None or with_config is alone:
        return
    for what, a, b in (
        ("BOS", alone.bos_id, with_config.bos_id),
        ("EOS", alone.eos_id, with_config.eos_id),
    ):
        if a != b:
            yield Issue(
                f"alone, the tokenizer file gives {what} {_name(target, a)}; the "
                f"bundle gives {_name(target, b)}",
                target.tokenizer_entry["member"] if target.tokenizer_entry else None,
            )


@rule("ETM409", "marker-not-one-token", ERROR, "a template marker splits into pieces")
def marker_not_one_token(target: Target) -> Iterator[Issue]:
    """The prompt the chat template renders holds a special-looking marker
    (`<|im_start|>`, `<start_of_turn>`, `</s>`) that the runtime's tokenizer
    does not encode to one special-token id.

    Why: the model was trained to see one id there; split into ordinary
    pieces, the marker is just text, and the model loses track of turns.

    Fix: ship the tokenizer the template was written for (with the marker as
    an added token), or fix the template's spelling of the marker.

    Failing: a ChatML template with a tokenizer that has no `<|im_start|>`.
    Passing: the model's own tokenizer, where `<|im_start|>` is one id.
    """
    from etm_lint.lint.rules.template import probe_prompt
    from etm_lint.template import marker_candidates

    tokenizer = target.tokenizer
    prompt = probe_prompt(target, "multi-turn+gen")
    if tokenizer is None or prompt is None:
        return
    for marker in marker_candidates(prompt):
        if token_id(target, marker) is None:
            try:
                pieces = len(tokenizer.encode(marker))
            except EtmError:
                continue
            yield Issue(
                f"the template writes {marker!r}, which the tokenizer splits "
                f"into {pieces} pieces",
                METADATA,
                location="/chat_template",
            )


@rule("ETM410", "num-bos-adds-nothing", WARNING, "num_bos > 0 but no BOS is added")
def num_bos_adds_nothing(target: Target) -> Iterator[Issue]:
    """`num_bos` asks the runtime to prepend BOS, but its tokenizer adds none
    (a Hugging Face tokenizer adds BOS only through its post-processor).

    Why: prompts reach the model without the BOS it was trained with.

    Fix: add BOS in the chat template, or ship a `tokenizer.json` whose
    post-processor adds it.

    Failing: `num_bos: 1` with a `tokenizer.json` without a BOS template.
    Passing: a post-processor `<s> $A`.
    """
    document, tokenizer = target.valid_metadata, target.tokenizer
    if document is None or tokenizer is None or document.get("num_bos", 0) < 1:
        return
    try:
        ids = tokenizer.encode("Hello", bos=document["num_bos"])
    except EtmError:
        return
    if not ids or ids[0] != tokenizer.bos_id:
        yield Issue(
            f"num_bos is {document['num_bos']}, but the runtime's encode adds no "
            f"BOS (got {ids[:4]})",
            METADATA,
            location="/num_bos",
        )
