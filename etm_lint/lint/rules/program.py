"""ETM2xx: the program (.pte) and its external weights (.ptd).

What the ExecuTorch LLM runner reads from a program, in
``extension/llm/runner/llm_runner_helper.cpp``: it requires
``get_max_seq_len``; reads ``get_max_context_len`` (defaulting to the
former), ``use_kv_cache``, ``use_sdpa_with_kv_cache`` and
``enable_dynamic_shape`` as scalars; takes EOS ids from ``get_eos_ids`` when
present; and ignores ``get_bos_id`` and ``get_vocab_size``, taking both from
the tokenizer instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from etm_lint.format.pte import Method, ProgramInfo
from etm_lint.lint.model import Issue, Severity, rule
from etm_lint.lint.target import Target

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

# Constant methods the runner (and our checks) read, with the kind each
# must return. Scalar conversion accepts Int, Bool and Double; anything else
# aborts the runner when it converts the value.
RUNNER_CONSTANTS = {
    "get_max_seq_len": "Int",
    "get_max_context_len": "Int",
    "get_eos_ids": "Int",
    "get_bos_id": "Int",
    "get_vocab_size": "Int",
    "use_kv_cache": "Bool",
    "use_sdpa_with_kv_cache": "Bool",
    "enable_dynamic_shape": "Bool",
}
SCALAR_KINDS = ("Int", "Bool", "Double")
# Names seen in real exports that the runner does not read.
MISNAMED = {
    "get_eos_id": "get_eos_ids",
    "get_use_kv_cache": "use_kv_cache",
    "get_max_context_length": "get_max_context_len",
    "get_max_seq_length": "get_max_seq_len",
    "max_seq_len": "get_max_seq_len",
    "get_n_vocab": "get_vocab_size",
    "get_bos_ids": "get_bos_id",
    "eos_ids": "get_eos_ids",
}
# Backends the prebuilt ExecuTorch wheels execute with no vendor libraries.
PORTABLE_BACKENDS = ("XnnpackBackend",)


def _program(target: Target) -> ProgramInfo | None:
    return target.program


def logits_size(program: ProgramInfo) -> int | None:
    """The last dimension of the first output of ``forward`` (or ``decode``)."""
    method = program.method("forward") or program.method("decode")
    if method is None or not method.outputs:
        return None
    first = method.outputs[0]
    if first.kind != "Tensor" or not first.sizes:
        return None
    return first.sizes[-1]


@rule("ETM201", "program-unreadable", ERROR, "the program is not a valid .pte")
def program_unreadable(target: Target) -> Iterator[Issue]:
    """The program member is not a well-formed ExecuTorch program: a bad
    identifier or header, a flatbuffer that points outside itself, segments
    past the end of the file.

    Why: the runtime refuses it, or worse, reads garbage.

    Fix: re-export the program; check the file was not truncated in transit.

    Failing: a `.pte` cut short by a failed upload.
    Passing: a program saved by `ExecutorchProgramManager.write_to_file`.
    """
    if target.program_error is not None:
        yield Issue(target.program_error, target.program_member)


@rule("ETM202", "runner-method-missing", ERROR, "no method the LLM runner calls")
def runner_method_missing(target: Target) -> Iterator[Issue]:
    """The program has neither a `forward` method nor the pair `prefill`
    and `decode`.

    Why: the text LLM runner executes `forward` (or `prefill` then `decode`
    for two-method exports); without them it fails at load.

    Fix: export the model's decoder as `forward`.

    Failing: a program whose only method is `main`.
    Passing: `forward(tokens, cache_position) -> logits`.
    """
    program = _program(target)
    if program is None:
        return
    names = {m.name for m in program.methods}
    if "forward" not in names and not {"prefill", "decode"} <= names:
        found = ", ".join(sorted(names)) or "none"
        yield Issue(
            f"no forward (or prefill and decode) method; methods: {found}",
            target.program_member,
        )


@rule("ETM203", "max-seq-len-missing", ERROR, "get_max_seq_len is absent")
def max_seq_len_missing(target: Target) -> Iterator[Issue]:
    """The program has no `get_max_seq_len` constant method.

    Why: the ExecuTorch LLM runner refuses to load a program without it
    ("Required metadata method get_max_seq_len not found in model").

    Fix: pass `constant_methods={"get_max_seq_len": N, ...}` to
    `to_edge_transform_and_lower` when exporting.

    Failing: constants `get_vocab_size`, `get_eos_ids` only.
    Passing: `get_max_seq_len = 128` among them.
    """
    program = _program(target)
    if program is not None and program.method("get_max_seq_len") is None:
        yield Issue(
            "no get_max_seq_len method; the LLM runner refuses such a program",
            target.program_member,
        )


@rule("ETM204", "constant-wrong-type", ERROR, "a runner constant has the wrong type")
def constant_wrong_type(target: Target) -> Iterator[Issue]:
    """A constant method the runner reads returns the wrong kind of value:
    a string, a list or a tensor where a number is expected, a Bool where a
    length is expected, or a method that is not a constant at all.

    Why: the runner converts each to a scalar; a string or tensor aborts it,
    and `get_max_seq_len = True` becomes a context of one token.

    Fix: export the constant as a plain Python int or bool.

    Failing: `get_max_seq_len = True`, `use_kv_cache = "yes"`.
    Passing: `get_max_seq_len = 128`, `use_kv_cache = True`.
    """
    program = _program(target)
    if program is None:
        return
    for name, expected in RUNNER_CONSTANTS.items():
        method = program.method(name)
        if method is None:
            continue
        problem = _type_problem(method, expected)
        if problem:
            yield Issue(f"{name} {problem}", target.program_member)


def _type_problem(method: Method, expected: str) -> str | None:
    if not method.is_constant:
        return "is not a constant method (it has inputs or instructions)"
    kinds = [v.kind for v in method.outputs]
    if method.name != "get_eos_ids" and len(kinds) != 1:
        return f"returns {len(kinds)} values, expected one {expected}"
    for kind in kinds:
        if kind not in SCALAR_KINDS:
            return f"returns {kind}, expected {expected}"
        if expected == "Int" and kind == "Bool":
            return "returns Bool, expected Int"
    return None


@rule("ETM213", "constant-type-loose", WARNING, "a runner constant of a near type")
def constant_type_loose(target: Target) -> Iterator[Issue]:
    """A constant the runner reads has a scalar type other than its own: an
    Int where a Bool is meant (`use_kv_cache = 1`), or a Double where an Int
    is meant.

    Why: the ExecuTorch runner converts every constant with `toScalar` and
    copes, but typed readers do not: app code calling `toBool()` on it, or
    another runtime, aborts or misreads it.

    Fix: export the constant as a Python bool (or int) of the right type.

    Failing: `use_kv_cache = 1`.
    Passing: `use_kv_cache = True`.
    """
    program = _program(target)
    if program is None:
        return
    for name, expected in RUNNER_CONSTANTS.items():
        method = program.method(name)
        if method is None or _type_problem(method, expected) is not None:
            continue
        kinds = sorted({v.kind for v in method.outputs} - {expected})
        if kinds:
            yield Issue(
                f"{name} returns {kinds[0]}, expected {expected}",
                target.program_member,
            )


@rule("ETM214", "constant-buffer-deprecated", ERROR, "constants in the old buffer")
def constant_buffer_deprecated(target: Target) -> Iterator[Issue]:
    """The program keeps its constant tensors in the flatbuffer's deprecated
    `constant_buffer` instead of a constant segment.

    Why: ExecuTorch 1.5.1 is built without that path
    (`ET_ENABLE_DEPRECATED_CONSTANT_BUFFER=0`) and refuses to load the
    program: the model never runs on a device with a current runtime.

    Fix: export the program again with a current ExecuTorch, which puts
    constants in a segment after the flatbuffer (or in a `.ptd`).

    Failing: a program from an old exporter with a non-empty
    `constant_buffer` and no constant segment offsets.
    Passing: a program whose constants are in a segment, as current
    exporters write it.
    """
    program = _program(target)
    if program is not None and program.uses_constant_buffer:
        yield Issue(
            "constants are in the deprecated constant_buffer, which ExecuTorch "
            "1.5.1 refuses to load; export the program again",
            target.program_member,
        )


@rule("ETM205", "context-shorter-than-seq-len", ERROR, "context below seq len")
def context_shorter(target: Target) -> Iterator[Issue]:
    """`get_max_context_len` is smaller than `get_max_seq_len`.

    Why: the runner lets a prompt of `get_max_seq_len` tokens in and then
    has no room in the KV cache to generate; generation stops at once or
    overruns the cache.

    Fix: export with `get_max_context_len >= get_max_seq_len` (usually the
    KV cache length for both).

    Failing: `get_max_seq_len = 128`, `get_max_context_len = 64`.
    Passing: both 128.
    """
    program = _program(target)
    if program is None:
        return
    constants = program.constants
    seq, context = (
        constants.get("get_max_seq_len"),
        constants.get("get_max_context_len"),
    )
    if _is_int(seq) and _is_int(context) and context < seq:  # type: ignore[operator]
        yield Issue(
            f"get_max_context_len is {context}, below get_max_seq_len {seq}",
            target.program_member,
        )


@rule(
    "ETM206", "constant-misnamed", WARNING, "a constant under a name the runner ignores"
)
def constant_misnamed(target: Target) -> Iterator[Issue]:
    """A constant method has a name the ExecuTorch LLM runner never reads,
    close to one it does (`get_eos_id` for `get_eos_ids`).

    Why: the runner silently falls back to its default or the tokenizer's
    value: with `get_eos_id`, EOS comes from the tokenizer and the model's
    real end-of-turn id may never stop generation.

    Fix: export the constant under the name the runner reads.

    Failing: `get_eos_id = 2`.
    Passing: `get_eos_ids = [2]`.
    """
    program = _program(target)
    if program is None:
        return
    names = {m.name for m in program.methods}
    for wrong, right in MISNAMED.items():
        if wrong in names and right not in names:
            yield Issue(
                f"{wrong} is not read by the LLM runner; did you mean {right}?",
                target.program_member,
            )


@rule("ETM207", "external-data-missing", ERROR, "weights the program needs are absent")
def external_data_missing(target: Target) -> Iterator[Issue]:
    """The program reads named data (external weights) that no bundled
    `.ptd` provides.

    Why: the runner constructs fine and then fails at the first `generate()`
    on the first missing key.

    Fix: bundle the `.ptd` written by the same export (`etm pack --weights`).

    Failing: a program exported with external constants, packed alone.
    Passing: the program with its `.ptd`.
    """
    program = _program(target)
    if program is None:
        return
    provided = _provided_keys(target)
    if provided is None:
        return
    missing = [k for k in program.required_data_keys if k not in provided]
    if missing:
        sample = ", ".join(missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        yield Issue(
            f"{len(missing)} named tensors are in no bundled .ptd: {sample}{more}",
            target.program_member,
        )


@rule("ETM208", "weights-unused", WARNING, "a .ptd the program does not read")
def weights_unused(target: Target) -> Iterator[Issue]:
    """A bundled `.ptd` provides no key the program reads.

    Why: dead weight on every device, and usually a sign that the wrong
    weights file was packed (another export's).

    Fix: pack the `.ptd` from the same export as the program, or drop it.

    Failing: `foundation.ptd` from last week's export beside today's program.
    Passing: the `.ptd` written with the program.
    """
    program = _program(target)
    if program is None:
        return
    needed = set(program.required_data_keys)
    for name, info in target.weights.items():
        if isinstance(info, str):
            continue
        if not needed.intersection(info.keys):
            yield Issue(f"{name} provides none of the keys the program reads", name)


@rule(
    "ETM209", "backend-needs-vendor-runtime", INFO, "a delegate needs vendor libraries"
)
def backend_needs_vendor(target: Target) -> Iterator[Issue]:
    """The program is delegated to a backend that needs vendor libraries on
    the device (Qualcomm QNN, Core ML, MediaTek, OpenVINO ...).

    Why: the bundle runs only where that backend is linked and its vendor
    runtime is installed; the stock runtime fails to load it.

    Fix: nothing, if the target devices have the backend; otherwise export
    for XNNPACK as well and ship both.

    Failing (reported): `QnnBackend`.
    Passing: `XnnpackBackend`.
    """
    program = _program(target)
    if program is None:
        return
    for backend in program.backends:
        if backend not in PORTABLE_BACKENDS:
            yield Issue(
                f"delegated to {backend}, which needs that vendor's runtime",
                target.program_member,
            )


@rule("ETM210", "weights-unreadable", ERROR, "a .ptd is not valid")
def weights_unreadable(target: Target) -> Iterator[Issue]:
    """A weights member is not a well-formed `.ptd` (FlatTensor) file.

    Why: the runtime cannot load the named data in it.

    Fix: re-export; check the file was not truncated.

    Failing: a `.ptd` cut short.
    Passing: the `.ptd` the export wrote.
    """
    for name, info in target.weights.items():
        if isinstance(info, str):
            yield Issue(info, name)


@rule("ETM211", "llm-constant-missing", WARNING, "an LLM constant is absent")
def llm_constant_missing(target: Target) -> Iterator[Issue]:
    """The program lacks `get_eos_ids` or `get_max_context_len`.

    Why: without `get_eos_ids` the runner stops only on the tokenizer's one
    EOS id, so a chat model that ends turns with another token never stops;
    without `get_max_context_len` the runner assumes `get_max_seq_len`.

    Fix: export both constants.

    Failing: constants `get_max_seq_len` only.
    Passing: `get_max_seq_len`, `get_max_context_len`, `get_eos_ids`.
    """
    program = _program(target)
    if program is None or program.method("get_max_seq_len") is None:
        return
    for name in ("get_eos_ids", "get_max_context_len"):
        if program.method(name) is None and not _misnamed_present(program, name):
            yield Issue(f"no {name} method", target.program_member)


@rule("ETM212", "vocab-size-disagrees", WARNING, "get_vocab_size differs from logits")
def vocab_size_disagrees(target: Target) -> Iterator[Issue]:
    """`get_vocab_size` differs from the width of the logits `forward`
    returns.

    Why: the runner ignores `get_vocab_size` (it takes the tokenizer's), so
    the constant misleads every tool that trusts it; the logits width is
    what the program can really score.

    Fix: export `get_vocab_size` equal to the model's vocabulary.

    Failing: `get_vocab_size = 32000` with logits of width 32064.
    Passing: both 32064.
    """
    program = _program(target)
    if program is None:
        return
    declared = program.constants.get("get_vocab_size")
    width = logits_size(program)
    if _is_int(declared) and width is not None and width > 0 and declared != width:
        yield Issue(
            f"get_vocab_size is {declared}, forward returns {width} logits",
            target.program_member,
        )


def _provided_keys(target: Target) -> set[str] | None:
    keys: set[str] = set()
    program = target.program
    if program is not None:
        keys.update(program.named_data_keys)
    for info in target.weights.values():
        if isinstance(info, str):
            return None  # reported by ETM210; do not guess
        keys.update(info.keys)
    return keys


def _misnamed_present(program: ProgramInfo, name: str) -> bool:
    return any(right == name and program.method(w) for w, right in MISNAMED.items())


def int_values(value: object) -> list[int]:
    """The integers in a constant's value (one, or a list of several)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
