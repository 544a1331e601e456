"""Generation on ExecuTorch's LLM runner, with exact ids and clean descriptors.

``LoadedModel`` runs ``executorch.extension.llm.runner.TextLLMRunner`` and
reports what it did. The runner has traps; each is handled here, on purpose:

1. **Partial UTF-8.** The runner hands every piece to the Python callback as
   a C++ ``std::string``; pybind11 turns it into ``str`` with strict UTF-8
   decoding before our function runs, so a piece that is part of a character
   (byte-level vocabularies, SentencePiece byte fallback through
   ``tokenizer.json``) raises ``UnicodeDecodeError`` and aborts ``generate``.
   No callback can see those bytes, and the runner's own stdout drops
   one-byte pieces that are not printable (``safe_printf``). So ``text`` is
   never built from the pieces: it is the tokenizer's reference decoding of
   the exact ids (Hugging Face ``tokenizers`` or ``sentencepiece``; the
   runner's own piece bytes, joined, where no reference library exists).
   When the callback breaks, the runner is run again without one, for its
   timing, and ``runner_text`` is None. (Through ``tokenizer.model`` the
   runner's SentencePiece code never splits a character: it streams byte
   pieces other than ``<0x0A>`` as their literal names, ``<0xC3>``, which
   ``runner_text`` then shows and ``text`` does not.)
2. **Logs on fds 1 and 2.** Native code writes the pieces and a
   ``PyTorchObserver`` line to fd 1 and ``ET_LOG`` lines to fd 2, with no
   switch. Both descriptors point at temp files (not pipes: nobody would drain
   them) around every native call; Python's and C's buffers are flushed on
   both edges. Failures raise ``RunnerError``, one line carrying the log's
   first line that names a problem; the whole log is on the error.
3. **BOS/EOS: file versus folder.** The runner is given the tokenizer path
   exactly as the caller gave it, and prompts are encoded by the same loader
   on the same path (``etm_lint.tokenizer``), so BOS is whatever that loader
   resolves: a folder's ``tokenizer_config.json``/``special_tokens_map.json``,
   or for a lone ``tokenizer.json`` a guess from token names (0 when nothing
   matches). ``num_bos``/``num_eos`` are the caller's. EOS is the program's
   ``get_eos_ids`` when it has them, else the loader's EOS: that is the set
   the runner stops on. ``eos_ids`` given to ``load`` must equal it (the
   runner cannot be told otherwise); nothing is guessed or patched.
4. **Custom kernels.** Programs from the llama example call
   ``llama::custom_sdpa``/``llama::update_cache``. Detected from the
   program's operator list (read from its flatbuffer, nothing executed): when
   an operator is in the ``llama`` namespace, ``libcustom_ops_aot_lib.so``
   from the executorch wheel is loaded before the runner. ``custom_ops=True``
   or ``False`` overrides the detection.
5. **Ids and stop reason.** The callback gives text, and Stats give counts;
   neither names the ids. At temperature 0 the ids come from
   ``forward.ForwardLoop``, which makes the runner's own calls and so picks
   the same ids (the tests prove it on real programs). It runs first; the
   runner is then asked for exactly that many tokens, and its piece count and
   Stats are checked against the loop. The loop's ids for a prompt and its
   settings are kept, so repeated timing runs cost the runner alone. At
   temperature > 0 the runner samples
   with a seed from the wall clock and its choices cannot be replayed:
   ``token_ids`` is empty, ``text`` is the runner's pieces, and a piece that
   is not whole UTF-8 is an error.

Two more: the runner keeps its KV cache position between calls (a second
``generate`` continues the first), so it is reset before every call; and it
loads its methods lazily, at the first ``generate``, so ``load`` warms it
with a one-token prefill to make ``load_s`` the real load time.

Timing uses ``time.perf_counter_ns``; the runner's Stats (whole
milliseconds, wall clock) are only a cross-check, and the fallback for time to
first token when the callback cannot be used.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import importlib.util
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError

STOP_REASONS = ("eos", "stop_string", "length")
CUSTOM_OPS_LIBRARY = "libcustom_ops_aot_lib"
_FORWARD_CACHE_SIZE = 64
# Prompt tokens decoded before the generated ones, so the text keeps the
# leading space the first generated piece carries.
_DECODE_CONTEXT = 8


class _SplitCharacter(Exception):
    """A streamed piece was part of a character; the callback could not run."""


class RunnerError(EtmError, RuntimeError):
    """The runner failed; one line, with the captured native log kept aside."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Timing:
    """Measured on ``time.perf_counter_ns``, around the runner's own calls.

    ``load_s`` is the runner's construction plus its method load.
    ``time_to_first_token_s`` runs from the call to ``generate`` to the first
    piece; ``decode_tokens_per_s`` counts the tokens after the first over the
    time from the first piece to the last (0.0 with fewer than two tokens).
    """

    load_s: float
    time_to_first_token_s: float
    decode_tokens_per_s: float
    total_s: float
    num_generated: int


@dataclass(frozen=True)
class Generation:
    """One generation. ``token_ids`` excludes the prompt, includes the stop id.

    ``text`` excludes the stop token's text and includes a stop string that
    ended generation, as transformers does. ``runner_text`` is what the
    runner's callback streamed (without the stop token's piece), or None when
    the callback could not carry it.
    """

    text: str
    token_ids: tuple[int, ...]
    prompt_ids: tuple[int, ...]
    stop_reason: str
    stop_token: int | None
    timing: Timing
    runner_text: str | None = None
    # The raw prompt text the runner was given (a rendered chat, for messages).
    prompt: str = ""

    @property
    def stopped_by(self) -> str:
        """The stop reason, with the stop id when a token stopped it."""
        if self.stop_token is None:
            return self.stop_reason
        return f"{self.stop_reason} (id {self.stop_token})"


# ------------------------------------------------------------ native output


@dataclass
class NativeLog:
    """The tails of what native code wrote to fds 1 and 2 inside a capture."""

    out: str = ""
    err: str = ""


_CAPTURE_LOCK = threading.RLock()
_TAIL_BYTES = 1 << 16
_LIBC: Any = None


def _flush() -> None:
    # Python's buffers, then C stdio's: the runner's printf output may sit in
    # a stdio buffer that would otherwise be flushed after the fds are back.
    global _LIBC
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    with contextlib.suppress(Exception):
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None)
        _LIBC.fflush(None)


def _tail(sink: Any) -> str:
    size = sink.seek(0, os.SEEK_END)
    sink.seek(max(0, size - _TAIL_BYTES))
    return str(sink.read().decode("utf-8", "replace"))


@contextlib.contextmanager
def captured() -> Iterator[NativeLog]:
    """Point fds 1 and 2 at temp files; their tails are in the log afterwards.

    Process-wide: output of other threads lands in the files too. Nested
    captures restore each other correctly.
    """
    log = NativeLog()
    with (
        _CAPTURE_LOCK,
        tempfile.TemporaryFile() as out_sink,
        tempfile.TemporaryFile() as err_sink,
    ):
        _flush()
        saved: list[tuple[int, int]] = []
        try:
            for fd, sink in ((1, out_sink), (2, err_sink)):
                with contextlib.suppress(OSError):  # a closed fd stays closed
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
            yield log
        finally:
            _flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            log.out, log.err = _tail(out_sink), _tail(err_sink)


# Lines that say nothing about a failure: the tokenizer loader probing
# formats in turn, CPU feature probing, defaults the runner reports.
_NOISE = re.compile(
    r"^([EIW] tokenizers:|\[cpuinfo_utils\.cpp)|using the default value|"
    r"Registering override"
)
_PROBLEM = re.compile(
    r"(?i)fail|error|missing|invalid|not found|\bnull\b|cannot|can't|couldn't|"
    r"unable|exceed|mismatch|!="
)
_LOG_PREFIX = re.compile(r"^\[[\w./-]+:\d+\]\s*")


def log_line(log: str) -> str:
    """The first log line that names a problem, else the last line."""
    lines = [ln.strip() for ln in log.splitlines()]
    kept = [ln for ln in lines if ln and not _NOISE.search(ln)]
    if not kept:
        return "no log output"
    found = next((ln for ln in kept if _PROBLEM.search(ln)), kept[-1])
    found = _LOG_PREFIX.sub("", found)
    return found if len(found) <= 200 else found[:197] + "..."


# ------------------------------------------------------------ native modules


def _import_runner() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import executorch.extension.llm.runner as runner

    return runner


def custom_ops_library() -> Path:
    """Where the executorch wheel keeps the llama custom kernels library."""
    spec = importlib.util.find_spec("executorch.extension.llm.custom_ops")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        for found in sorted(Path(folder).glob(f"{CUSTOM_OPS_LIBRARY}.*")):
            return found
    raise EtmError(f"{CUSTOM_OPS_LIBRARY} is not in the installed executorch")


_CUSTOM_OPS: Any = None


def _load_custom_ops() -> None:
    # dlopen registers the kernels in the libexecutorch.so the runner and the
    # pybindings share; the handle is kept so the library stays loaded.
    global _CUSTOM_OPS
    if _CUSTOM_OPS is None:
        _CUSTOM_OPS = ctypes.CDLL(str(custom_ops_library()), mode=ctypes.RTLD_GLOBAL)


def needs_custom_ops(operators: Sequence[str]) -> bool:
    """True when a program calls kernels from the llama example's library."""
    return any(op.startswith("llama::") for op in operators)


# ------------------------------------------------------------ the program


@dataclass(frozen=True)
class _ProgramFacts:
    operators: tuple[str, ...]
    eos_ids: tuple[int, ...] | None
    max_seq_len: int
    max_context_len: int
    logits_size: int | None
    needs_data: bool


def _program_facts(path: str) -> _ProgramFacts:
    from etm_lint.format.pte import read_program
    from etm_lint.format.source import FileSource

    with FileSource(path) as source:
        info = read_program(source)
    consts = info.constants
    if "get_max_seq_len" not in consts:
        raise EtmError(f"{path}: no get_max_seq_len method; the runner refuses it")
    eos = consts.get("get_eos_ids")
    max_seq = int(_scalar(consts["get_max_seq_len"]))
    forward = info.method("forward")
    outputs = forward.outputs if forward is not None else ()
    sizes = outputs[0].sizes if outputs else None
    return _ProgramFacts(
        operators=tuple(op for m in info.methods for op in m.operators),
        eos_ids=None if eos is None else _int_tuple(eos),
        max_seq_len=max_seq,
        max_context_len=int(_scalar(consts.get("get_max_context_len", max_seq))),
        logits_size=int(sizes[-1]) if sizes else None,
        needs_data=bool(info.external_tensor_keys or info.required_data_keys),
    )


def _scalar(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _int_tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in (value if isinstance(value, list) else [value]))


def _check_files(program: str, tokenizer: str, data_files: Sequence[str]) -> None:
    for path in (program, *data_files):
        if not os.path.isfile(path):
            raise EtmError(f"{path}: no such file")
    if not os.path.exists(tokenizer):
        raise EtmError(f"{tokenizer}: no such file or folder")
    if len(data_files) > 1:
        raise EtmError(
            f"{program}: the runner takes one .ptd file, got {len(data_files)}"
        )


# ------------------------------------------------------------ text


def _continuation(
    decode: Callable[[list[int]], str], prompt: Sequence[int], ids: Sequence[int]
) -> str:
    """The text ``ids`` add after the prompt, leading space included."""
    if not ids:
        return ""
    context = list(prompt[-_DECODE_CONTEXT:])
    head, full = decode(context), decode(context + list(ids))
    if context and full.startswith(head) and not head.endswith("\ufffd"):
        return full[len(head) :]
    return decode(list(ids))


def _has_stop(text: str, stop: Sequence[str]) -> bool:
    return any(s in text for s in stop)


# ------------------------------------------------------------ the model


@dataclass
class _Pieces:
    """What the runner's callbacks saw during one generate."""

    texts: list[str]
    stamps: list[int]
    stats: dict[str, int]


_BYTE_NAME = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class _Stream:
    """Text for an ``on_text`` hook, as the runner streams it, one piece behind.

    The newest piece is held until the next one comes, so the stop token's
    piece (which the runner passes on) is never shown. SentencePiece byte
    pieces, which the runner streams by name (``<0xC3>``), become their bytes
    when ``byte_names``, and bytes are shown once they make whole characters.
    """

    def __init__(self, sink: Callable[[str], None], byte_names: bool):
        self._sink, self._byte_names = sink, byte_names
        self._held: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.shown = ""

    def feed(self, piece: str) -> None:
        if self._held is not None:
            self._show(self._held)
        self._held = piece

    def finish(self, drop_last: bool) -> None:
        if self._held is not None and not drop_last:
            self._show(self._held)
        self._held = None
        self.write(self._decoder.decode(b"", final=True))

    def _show(self, piece: str) -> None:
        name = _BYTE_NAME.fullmatch(piece) if self._byte_names else None
        data = bytes([int(name.group(1), 16)]) if name else piece.encode("utf-8")
        self.write(self._decoder.decode(data))

    def write(self, text: str) -> None:
        if text:
            self.shown += text
            self._sink(text)


class _StopWatch:
    """The runner's callbacks: a clock reading per piece, stop strings, Stats."""

    def __init__(
        self,
        runner: Any,
        stop: tuple[str, ...],
        pieces: _Pieces,
        stream: _Stream | None = None,
    ):
        self._runner, self._stop, self._pieces = runner, stop, pieces
        self._stream = stream
        self._text = ""
        self._stopped = False

    def on_piece(self, piece: str) -> None:
        now = time.perf_counter_ns()
        if self._stopped:
            # A stop asked for at the prefill token is cleared when the
            # runner's decode loop starts; ask again, drop the extra piece.
            self._runner.stop()
            return
        self._pieces.stamps.append(now)
        self._pieces.texts.append(piece)
        if self._stream is not None:
            self._stream.feed(piece)
        if self._stop:
            self._text += piece
            if _has_stop(self._text, self._stop):
                self._stopped = True
                self._runner.stop()

    def on_stats(self, stats: Any) -> None:
        self._pieces.stats.update(
            prompt=stats.num_prompt_tokens,
            generated=stats.num_generated_tokens,
            start_ms=stats.inference_start_ms,
            first_ms=stats.first_token_ms,
        )


class LoadedModel:
    """A program and tokenizer loaded in the LLM runner. Not thread-safe."""

    def __init__(self) -> None:  # use LoadedModel.load
        self.program = ""
        self.tokenizer = ""
        self.data_files: tuple[str, ...] = ()
        self.eos_ids: tuple[int, ...] = ()
        self.bos_id = 0
        self.max_context_len = 0
        self.custom_ops = False
        self.load_s = 0.0
        self.last_log = NativeLog()
        self._sliding = False
        self._runner: Any = None
        self._module: Any = None
        self._tokenizer: Any = None
        self._decode: Callable[[list[int]], str] = lambda ids: ""
        self._forward: Any = None
        self._forward_cache: dict[tuple[Any, ...], list[int]] = {}

    @classmethod
    def load(
        cls,
        program: str,
        tokenizer: str,
        data_files: Sequence[str] = (),
        *,
        eos_ids: Sequence[int] | None = None,
        custom_ops: bool | None = None,
    ) -> LoadedModel:
        """Load ``program`` (with its ``.ptd``) and ``tokenizer`` in the runner.

        ``tokenizer`` is a file, or a folder holding ``tokenizer.json`` with
        ``tokenizer_config.json``; it reaches the runner as given.
        ``custom_ops`` None loads the llama kernels when the program calls them.
        """
        program, tokenizer = os.fspath(program), os.fspath(tokenizer)
        data = tuple(os.fspath(d) for d in data_files)
        _check_files(program, tokenizer, data)
        facts = _program_facts(program)
        if facts.needs_data and not data:
            raise EtmError(
                f"{program}: its weights live in a separate .ptd file; pass it"
            )
        self = cls()
        self.program, self.tokenizer, self.data_files = program, tokenizer, data
        self.max_context_len = facts.max_context_len
        self._sliding = facts.max_seq_len < facts.max_context_len
        self._load_tokenizer(facts, eos_ids)
        self.custom_ops = (
            needs_custom_ops(facts.operators) if custom_ops is None else custom_ops
        )
        self._load_runner()
        return self

    def _load_tokenizer(
        self, facts: _ProgramFacts, eos_ids: Sequence[int] | None
    ) -> None:
        from etm_lint import tokenizer as tok

        runtime = tok.load(self.tokenizer)
        if facts.logits_size is not None and runtime.vocab_size > facts.logits_size:
            raise EtmError(
                f"{self.tokenizer}: tokenizer has {runtime.vocab_size} tokens, "
                f"{self.program} scores {facts.logits_size}; the runner would "
                "read past its logits"
            )
        effective = facts.eos_ids if facts.eos_ids is not None else (runtime.eos_id,)
        if eos_ids is not None and set(eos_ids) != set(effective):
            raise EtmError(
                f"{self.program}: the runner stops on eos ids {sorted(effective)}, "
                f"not the {sorted(set(eos_ids))} given"
            )
        self._tokenizer, self.bos_id = runtime, runtime.bos_id
        self.eos_ids = tuple(sorted(set(effective)))
        self._decode = _reference_decoder(tok, runtime)

    def _load_runner(self) -> None:
        data = self.data_files[0] if self.data_files else None
        with captured() as log:
            self._module = _import_runner()
            if self.custom_ops:
                _load_custom_ops()
            start = time.perf_counter_ns()
            try:
                runner = self._module.TextLLMRunner(self.program, self.tokenizer, data)
                self._warm(runner)
            except RuntimeError as err:
                failure: RuntimeError | None = err
            else:
                failure = None
            self.load_s = (time.perf_counter_ns() - start) / 1e9
        self.last_log = log
        if failure is not None:
            raise self._error("loading failed", log, failure)
        self._runner = runner

    def _warm(self, runner: Any) -> None:
        # The runner loads its methods at the first prefill; an empty token
        # list there is a fatal check in C++, so only a text that encodes to
        # at least one token is used.
        for text, bos in (("a", 0), ("a", 1)):
            if self._tokenizer.encode(text, bos, 0):
                config = self._module.GenerationConfig(num_bos=bos, echo=False)
                runner.prefill(text, config)
                runner.reset()
                return

    def _error(self, what: str, log: NativeLog, err: BaseException) -> RunnerError:
        line = log_line(log.err)
        hint = ""
        if "llama::" in line and not self.custom_ops:
            hint = " (the llama custom kernels are not loaded: custom_ops=True)"
        name = os.path.basename(self.program)
        return RunnerError(f"{name}: {what}: {line}{hint}", log.err or str(err))

    # -------------------------------------------------------------- generate

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        num_bos: int = 0,
        num_eos: int = 0,
        stop: Sequence[str] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Generate from raw ``prompt`` text on the runner.

        ``max_new_tokens`` None fills the context, as the runner does.
        ``temperature`` is in [0, 1] (the runner's range); above 0 the
        runner seeds its sampler from the wall clock, so results are not
        reproducible and ``token_ids`` is empty (see the module docstring).

        ``on_text`` is called with the text as the runner streams it, from
        inside the runner's callback while fds 1 and 2 are captured (write to
        a saved descriptor to show it). A streamed generation is the
        runner's one run, so ``token_ids`` is empty at any temperature,
        unless a piece that splits a character ends the streaming at
        temperature 0: the exact ids are then made as without ``on_text``,
        and the rest of their text is streamed at once.
        """
        stop = tuple(stop)
        check_arguments(prompt, max_new_tokens, temperature, num_bos, num_eos, stop)
        prompt_ids = self._encode(prompt, num_bos, num_eos)
        limit = self._resolve_limit(max_new_tokens, len(prompt_ids))
        if on_text is not None:
            return self._streamed(
                prompt, prompt_ids, limit, temperature, num_bos, num_eos, stop, on_text
            )
        if temperature > 0:
            return self._sampled(
                prompt, prompt_ids, limit, temperature, num_bos, num_eos, stop
            )
        return self._greedy(prompt, prompt_ids, limit, num_bos, num_eos, stop)

    def _encode(self, prompt: str, num_bos: int, num_eos: int) -> list[int]:
        ids = self._tokenizer.encode(prompt, num_bos, num_eos)
        if not ids:
            raise EtmError(f"{self.tokenizer}: the prompt encodes to no tokens")
        if len(ids) >= self.max_context_len:
            raise EtmError(
                f"{self.program}: the prompt has {len(ids)} tokens; the context "
                f"holds {self.max_context_len}"
            )
        return ids

    def _resolve_limit(self, max_new_tokens: int | None, num_prompt: int) -> int:
        # The runner's own rule; a sliding-window program (max_seq_len below
        # max_context_len) gets the whole context whatever the prompt.
        config = self._module.GenerationConfig(
            max_new_tokens=-1 if max_new_tokens is None else max_new_tokens
        )
        used = 0 if self._sliding else num_prompt
        return int(config.resolve_max_new_tokens(self.max_context_len, used))

    def _greedy(
        self,
        prompt: str,
        prompt_ids: list[int],
        limit: int,
        num_bos: int,
        num_eos: int,
        stop: tuple[str, ...],
    ) -> Generation:
        ids = self._forward_ids(prompt_ids, limit, stop)
        ended = ids[-1] in self.eos_ids
        body = ids[:-1] if ended else ids
        text = _continuation(self._decode, prompt_ids, body)
        reason = (
            "eos" if ended else "stop_string" if _has_stop(text, stop) else "length"
        )
        config = self._config(len(ids), 0.0, num_bos, num_eos)
        pieces = self._run(prompt, config, stop=(), tolerate_partial=True)
        self._check_agreement(pieces, prompt_ids, ids)
        runner_text = None
        if pieces.texts:
            runner_text = "".join(pieces.texts[: len(body)])
        return Generation(
            text=text,
            token_ids=tuple(ids),
            prompt_ids=tuple(prompt_ids),
            stop_reason=reason,
            stop_token=ids[-1] if ended else None,
            timing=self._timing(pieces, len(ids)),
            runner_text=runner_text,
        )

    def _streamed(
        self,
        prompt: str,
        prompt_ids: list[int],
        limit: int,
        temperature: float,
        num_bos: int,
        num_eos: int,
        stop: tuple[str, ...],
        on_text: Callable[[str], None],
    ) -> Generation:
        from etm_lint.tokenizer import TokenizerKind

        byte_names = self._tokenizer.kind is TokenizerKind.SENTENCEPIECE
        stream = _Stream(on_text, byte_names)
        try:
            return self._sampled(
                prompt, prompt_ids, limit, temperature, num_bos, num_eos, stop, stream
            )
        except _SplitCharacter:
            if temperature > 0:
                raise self._split_error(None) from None
        exact = self._greedy(prompt, prompt_ids, limit, num_bos, num_eos, stop)
        if exact.text.startswith(stream.shown):
            stream.write(exact.text[len(stream.shown) :])
        return exact

    def _sampled(
        self,
        prompt: str,
        prompt_ids: list[int],
        limit: int,
        temperature: float,
        num_bos: int,
        num_eos: int,
        stop: tuple[str, ...],
        stream: _Stream | None = None,
    ) -> Generation:
        config = self._config(limit, temperature, num_bos, num_eos)
        if stream is None:
            pieces = self._run(prompt, config, stop=stop, tolerate_partial=False)
        else:
            try:
                pieces = self._run_once(prompt, config, stop, True, stream)
            except UnicodeDecodeError:
                raise _SplitCharacter from None
        texts = pieces.texts
        joined = "".join(texts)
        if stop and _has_stop(joined, stop):
            reason, stop_token = "stop_string", None
        elif len(texts) < limit:
            reason = "eos"
            stop_token = self.eos_ids[0] if len(self.eos_ids) == 1 else None
            joined = "".join(texts[:-1])
        else:
            reason, stop_token = "length", None
        text = joined
        if stream is not None:
            stream.finish(drop_last=reason == "eos")
            text = stream.shown
        return Generation(
            text=text,
            token_ids=(),
            prompt_ids=tuple(prompt_ids),
            stop_reason=reason,
            stop_token=stop_token,
            timing=self._timing(pieces, len(texts)),
            runner_text=joined,
        )

    def _config(
        self, limit: int, temperature: float, num_bos: int, num_eos: int
    ) -> Any:
        return self._module.GenerationConfig(
            echo=False,
            max_new_tokens=limit,
            temperature=temperature,
            num_bos=num_bos,
            num_eos=num_eos,
        )

    def _forward_ids(
        self, prompt_ids: list[int], limit: int, stop: tuple[str, ...]
    ) -> list[int]:
        key = (tuple(prompt_ids), limit, stop)
        cached = self._forward_cache.get(key)
        if cached is not None:
            return cached

        def should_stop(out: list[int]) -> bool:
            return _has_stop(_continuation(self._decode, prompt_ids, out), stop)

        with captured() as log:
            try:
                loop = self._forward_loop()
                ids = loop.greedy(
                    prompt_ids,
                    limit,
                    self.eos_ids,
                    should_stop=should_stop if stop else None,
                )
            except (RuntimeError, EtmError) as err:
                raise self._error("the forward loop failed", log, err) from None
        if len(self._forward_cache) >= _FORWARD_CACHE_SIZE:
            self._forward_cache.pop(next(iter(self._forward_cache)))
        self._forward_cache[key] = ids
        return ids

    def _forward_loop(self) -> Any:
        if self._forward is None:
            from etm_lint.runtime.forward import ForwardLoop

            self._forward = ForwardLoop(self.program, self.data_files)
        return self._forward

    def _run(
        self, prompt: str, config: Any, *, stop: tuple[str, ...], tolerate_partial: bool
    ) -> _Pieces:
        """One runner.generate with our clock on every piece."""
        try:
            return self._run_once(prompt, config, stop, with_callback=True)
        except UnicodeDecodeError as err:
            if not tolerate_partial:
                raise self._split_error(err.object) from None
        return self._run_once(prompt, config, stop, with_callback=False)

    def _split_error(self, piece: bytes | None) -> RunnerError:
        shown = f" ({piece!r})" if piece is not None else ""
        return RunnerError(
            f"{os.path.basename(self.program)}: the runner streamed a piece that "
            f"is not whole UTF-8{shown}; at temperature > 0 its ids cannot be "
            "replayed to decode it; use temperature 0"
        )

    def _run_once(
        self,
        prompt: str,
        config: Any,
        stop: tuple[str, ...],
        with_callback: bool,
        stream: _Stream | None = None,
    ) -> _Pieces:
        pieces = _Pieces([], [], {})
        watch = _StopWatch(self._runner, stop, pieces, stream)
        callback = watch.on_piece if with_callback else None
        with captured() as log:
            self._runner.reset()
            start = time.perf_counter_ns()
            try:
                self._runner.generate(prompt, config, callback, watch.on_stats)
            except UnicodeDecodeError:
                self._runner.reset()
                raise
            except RuntimeError as err:
                failure: RuntimeError | None = err
            else:
                failure = None
            end = time.perf_counter_ns()
        self.last_log = log
        if failure is not None:
            raise self._error("generate failed", log, failure)
        pieces.stats.update(start_ns=start, end_ns=end)
        return pieces

    def _check_agreement(
        self, pieces: _Pieces, prompt_ids: list[int], ids: list[int]
    ) -> None:
        stats = pieces.stats
        problems = []
        if stats.get("prompt") != len(prompt_ids):
            problems.append(f"prompt {stats.get('prompt')} vs {len(prompt_ids)} tokens")
        if stats.get("generated") != len(ids) - 1:
            # Stats exclude the token prefill picks.
            problems.append(
                f"{_plus_one(stats.get('generated'))} vs {len(ids)} generated tokens"
            )
        if pieces.stamps and len(pieces.stamps) != len(ids):
            problems.append(f"{len(pieces.stamps)} pieces vs {len(ids)} ids")
        if problems:
            raise RunnerError(
                f"{os.path.basename(self.program)}: the runner and the forward "
                f"loop disagree (runner vs loop: {'; '.join(problems)})",
                self.last_log.err,
            )

    def _timing(self, pieces: _Pieces, count: int) -> Timing:
        stats, stamps = pieces.stats, pieces.stamps
        start, end = stats["start_ns"], stats["end_ns"]
        if stamps:
            first, last = stamps[0], stamps[-1]
            ttft = (first - start) / 1e9
        else:
            # No callback: the runner's millisecond stamps give the first token.
            ttft = max(0, stats.get("first_ms", 0) - stats.get("start_ms", 0)) / 1e3
            first, last = start + int(ttft * 1e9), end
        span = (last - first) / 1e9
        rate = (count - 1) / span if count > 1 and span > 0 else 0.0
        return Timing(
            load_s=self.load_s,
            time_to_first_token_s=ttft,
            decode_tokens_per_s=rate,
            total_s=(end - start) / 1e9,
            num_generated=count,
        )


def _plus_one(value: int | None) -> str:
    return "?" if value is None else str(value + 1)


def check_arguments(
    prompt: str,
    max_new_tokens: int | None,
    temperature: float,
    num_bos: int,
    num_eos: int,
    stop: tuple[str, ...],
) -> None:
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string (the runner needs one)")
    if max_new_tokens is not None and (
        not isinstance(max_new_tokens, int) or max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens!r}")
    if not 0.0 <= temperature <= 1.0:
        raise ValueError(
            f"temperature must be in [0, 1] (the runner's range), got {temperature}"
        )
    for name, count in (("num_bos", num_bos), ("num_eos", num_eos)):
        if not 0 <= count <= 127:
            raise ValueError(f"{name} must be from 0 to 127, got {count}")
    if any(not isinstance(s, str) or not s for s in stop):
        raise ValueError("stop strings must be non-empty strings")


def _reference_decoder(tok: Any, runtime: Any) -> Callable[[list[int]], str]:
    """The reference library's decode, or the runner's pieces joined as bytes."""
    try:
        ref = tok.reference(runtime.path)
    except (ImportError, tok.TokenizerError):
        ref = None
    if ref is not None:
        return ref.decode

    def joined(ids: list[int]) -> str:
        with captured():
            return str(tok.streamed_text(runtime, ids))

    return joined
