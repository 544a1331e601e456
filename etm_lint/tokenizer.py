"""The tokenizer as the ExecuTorch LLM runner will see it, and a reference view.

The runner (``load_tokenizer`` in executorch's
``extension/llm/runner/llm_runner_helper.cpp``) tries pytorch-tokenizers'
loaders in a fixed order and keeps the first whose ``load`` succeeds: Tekken
(only for paths ending ``tekken.json``), Hugging Face ``tokenizer.json`` (a
file, or a folder holding it), tiktoken (with Llama 3's default special tokens),
SentencePiece, llama2.c. This module runs that same C++ code through the
``pytorch_tokenizers_cpp`` bindings, which need no torch; their tokenizer code
is the runner's (the same log strings and limits are compiled into both
binaries). Answers therefore come from the runtime itself, not from a model of
it. What the bindings do not expose is reproduced from the sources and named
where it is done (the SentencePiece and llama2.c rule that a piece following
BOS loses its leading space).

Facts measured with pytorch-tokenizers 1.5.0 (the runner in executorch 1.5.1
agrees):

- A ``tokenizer.json`` given as a file gets BOS/EOS guessed from the names of
  its added tokens: a single name containing ``bos``/``begin`` (``eos``/``end``),
  the other one copied when only one is found, and id 0 when none is (Llama 2's
  ``<s>``/``</s>`` give 0/0). A folder is read with ``special_tokens_map.json``
  first and ``tokenizer_config.json`` for what it lacks; a token that is not an
  added token, a list, or ``null`` falls back to the guess, so a null
  ``bos_token`` makes BOS equal EOS.
- Every added token, special or not, is matched as a whole in the prompt text.
- A folder without ``tokenizer.json``, and an empty file, load as tiktoken
  vocabularies holding nothing but the 256 built-in special tokens.
- An exception that escapes a loader (the Tekken loader on some malformed JSON)
  ends ``load_tokenizer`` there: the Python runner raises, a C++ app aborts.
- ``SPTokenizer.decode`` of an id past the vocabulary crashes the process, so
  ids are range-checked here before any native decode.

Bounds on hostile input: a file (or a folder's JSON) over ``max_bytes`` is
refused before anything reads it; JSON nested deeper than Python's recursion
limit is refused before the native parser sees it; a llama2.c header that
claims more than ``LLAMA2C_MAX_VOCAB`` tokens is refused (the runtime accepts
up to 10 million and pads missing entries, about 70 bytes each). Regexes: the
runtime compiles every pattern with RE2 (linear time) and, when RE2 refuses
it (look-around, for one), with PCRE2, whose default match limit stops a
runaway match after about 0.1 s here; the runtime then silently drops the rest
of the text, which ``encode`` reports as an error. A pattern PCRE2 refuses too
goes to ``std::regex``, which backtracks without limit (26 characters took
3.4 s, each one more doubles it): such a tokenizer loads, but ``encode``
refuses to run it. Native log output is captured, never shown.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import enum
import json
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from etm_lint.errors import EtmError


class TokenizerError(EtmError):
    """A tokenizer file the runtime cannot use, told in one line naming it."""


class TokenizerKind(enum.Enum):
    TEKKEN = "tekken"
    HUGGINGFACE = "huggingface"
    TIKTOKEN = "tiktoken"
    SENTENCEPIECE = "sentencepiece"
    LLAMA2C = "llama2c"


RUNNER_ORDER = (
    TokenizerKind.TEKKEN,
    TokenizerKind.HUGGINGFACE,
    TokenizerKind.TIKTOKEN,
    TokenizerKind.SENTENCEPIECE,
    TokenizerKind.LLAMA2C,
)
TEKKEN_SUFFIX = "tekken.json"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
LLAMA2C_MAX_VOCAB = 1_000_000
# The runtime's own ceiling (its log says "must be 1..10000000").
_LLAMA2C_RUNTIME_MAX_VOCAB = 10_000_000
# tiktoken files get this many built-in special tokens appended to their ranks.
_TIKTOKEN_SPECIALS = 256
_TEKKEN_DEFAULT_SPECIALS = 1000

_NATIVE_CLASS = {
    TokenizerKind.TEKKEN: ("Tekken", "Tekken"),
    TokenizerKind.HUGGINGFACE: ("HFTokenizer", "HF"),
    TokenizerKind.TIKTOKEN: ("Tiktoken", "Tiktoken"),
    TokenizerKind.SENTENCEPIECE: ("SPTokenizer", "SentencePiece"),
    TokenizerKind.LLAMA2C: ("Llama2cTokenizer", "Llama2c"),
}
_FOLDER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

SAMPLE_TEXTS = (
    "Hello world",
    "Once upon a time, there was a little girl named Lily.",
    "  two  spaces,   three\tand a tab\n\n\nthree newlines  ",
    "3.14159 and 1234567 and 2024-06-01",
    "Führer, café, naïve, déjà vu, Ångström",
    "日本語のテキストと中文文本",
    "🦙 llamas 👍🏽 and ✅",
    "def square(x):\n    return x ** 2  # note\n",
)


# ---------------------------------------------------------------- native output

_FD_LOCK = threading.RLock()
_LIBC: Any = None
_CAPTURE_LIMIT = 1 << 16


@dataclass
class NativeOutput:
    """What the native code wrote to fds 1 and 2 (only when captured)."""

    text: str = ""


def _flush_all() -> None:
    # Python's buffers first, then C stdio's, so nothing written before the
    # switch lands in the sink and nothing written inside leaks out after it.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    global _LIBC
    with contextlib.suppress(Exception):
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None)
        _LIBC.fflush(None)


def _open_fds() -> list[int]:
    fds = []
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.fstat(fd)
            fds.append(fd)
    return fds


def _open_sink(capture: bool) -> IO[bytes]:
    if capture:
        return tempfile.TemporaryFile()
    return open(os.devnull, "wb")


@contextlib.contextmanager
def quiet_native(capture: bool = False) -> Iterator[NativeOutput]:
    """Point fds 1 and 2 at /dev/null (or a temp file) around native calls.

    The C++ tokenizers log to both descriptors with no switch to turn it off.
    With ``capture`` the output is kept (its first 64 KiB) in the yielded
    object once the block ends, for error messages.
    """
    with _FD_LOCK:
        _flush_all()
        with _open_sink(capture) as sink:
            saved: list[tuple[int, int]] = []
            result = NativeOutput()
            try:
                for fd in _open_fds():
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                yield result
            finally:
                _flush_all()
                for fd, copy in saved:
                    os.dup2(copy, fd)
                    os.close(copy)
            if capture:
                sink.seek(0)
                result.text = sink.read(_CAPTURE_LIMIT).decode("utf-8", "replace")


_NATIVE: Any = None


def _native() -> Any:
    """The ``pytorch_tokenizers_cpp`` module, imported once, quietly."""
    global _NATIVE
    if _NATIVE is None:
        try:
            with quiet_native():
                from pytorch_tokenizers import pytorch_tokenizers_cpp
        except ImportError as err:
            raise TokenizerError(f"pytorch-tokenizers is unavailable: {err}") from None
        _NATIVE = pytorch_tokenizers_cpp
    return _NATIVE


# Lines the native code writes that say nothing about the file.
_NOISE = re.compile(
    r"^(I tokenizers:|WARNING: All log messages|This may be ok|E\d{4} \S+ +\d+ re2"
    r"|couldn't load |Error message:|It is likely that)"
)
_LOG_PREFIX = re.compile(r"^[EIW] tokenizers:[\w.]+:\d+\] ")


def _log_summary(text: str, limit: int = 240) -> str:
    lines = [ln.strip() for ln in text.splitlines()]
    kept = [_LOG_PREFIX.sub("", ln) for ln in lines if ln and not _NOISE.match(ln)]
    return _clip("; ".join(kept), limit)


# ------------------------------------------------------------------ reading input


@dataclass(frozen=True)
class _Input:
    """A tokenizer path and what Python learned about it before native code."""

    path: str
    is_dir: bool
    data: bytes  # the file, or a folder's tokenizer.json; b"" when absent
    doc: Any  # parsed JSON, or None


def _read_input(path: str, max_bytes: int) -> _Input:
    try:
        is_dir = os.path.isdir(path)
        if not is_dir and not os.path.isfile(path):
            what = "no such file" if not os.path.lexists(path) else "not a regular file"
            raise TokenizerError(f"{path}: {what}")
        if is_dir:
            for member in _FOLDER_FILES:
                _check_size(os.path.join(path, member), max_bytes, missing_ok=True)
            json_path = os.path.join(path, "tokenizer.json")
            data = _read_bytes(json_path) if os.path.isfile(json_path) else b""
        else:
            _check_size(path, max_bytes, missing_ok=False)
            data = _read_bytes(path)
    except OSError as err:
        raise TokenizerError(f"{path}: {err.strerror or err}") from None
    return _Input(path, is_dir, data, _parse_json(path, data))


def _check_size(path: str, max_bytes: int, missing_ok: bool) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if missing_ok and not os.path.lexists(path):
            return
        raise
    if not stat.S_ISREG(info.st_mode):
        # A device or pipe would feed the native reader without end.
        raise TokenizerError(f"{path}: not a regular file")
    size = info.st_size
    if size > max_bytes:
        raise TokenizerError(
            f"{path}: {size} bytes is over the {max_bytes}-byte limit for a "
            "tokenizer; not loaded"
        )


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _parse_json(path: str, data: bytes) -> Any:
    if data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(data)
    except RecursionError:
        raise TokenizerError(
            f"{path}: JSON nested too deeply to inspect safely; not loaded"
        ) from None
    except ValueError:
        return None


# ------------------------------------------------------------- the runner's pick


@dataclass(frozen=True)
class LoadAttempt:
    """One loader the runner tried, and what the runtime said about it."""

    kind: TokenizerKind
    loaded: bool
    message: str = ""


@dataclass(frozen=True)
class RunnerPick:
    """Which loader the runner ends up with for a path, and why."""

    path: str
    kind: TokenizerKind | None
    attempts: tuple[LoadAttempt, ...]
    aborted: str | None = None

    def describe(self) -> str:
        """One line: what the runner does with this path."""
        if self.kind is not None:
            return f"the runner loads it as {self.kind.value}"
        if self.aborted is not None:
            return f"the runner's tokenizer loading aborts: {self.aborted}"
        tried = "; ".join(
            f"{a.kind.value}: {_clip(a.message or 'refused', 90)}"
            for a in self.attempts
            if not a.message.startswith("skipped")
        )
        return f"no loader of the runner accepts it ({tried})"


def _clip(text: str, limit: int) -> str:
    # Native messages can quote raw file bytes: keep them to one printable line.
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tekken_applies(path: str) -> bool:
    # A plain suffix test on the path string, as the runner does it.
    return path.endswith(TEKKEN_SUFFIX)


def _llama2c_guard(inp: _Input) -> None:
    if inp.is_dir or len(inp.data) < 16:
        return
    vocab = struct.unpack_from("<i", inp.data)[0]
    if LLAMA2C_MAX_VOCAB < vocab <= _LLAMA2C_RUNTIME_MAX_VOCAB:
        raise TokenizerError(
            f"{inp.path}: its llama2.c header claims {vocab} tokens (the runtime "
            f"would allocate them all); over this tool's {LLAMA2C_MAX_VOCAB}; "
            "not loaded"
        )


def _try_load(kind: TokenizerKind, path: str) -> tuple[Any, LoadAttempt, str]:
    class_name, label = _NATIVE_CLASS[kind]
    obj = getattr(_native(), class_name)()
    failure: str | None = None
    with quiet_native(capture=True) as out:
        try:
            obj.load(path)
        except Exception as err:  # the binding turns every C++ error into one
            failure = str(err) or type(err).__name__
    if failure is None:
        return obj, LoadAttempt(kind, True), out.text
    if failure == f"Failed to load {label} tokenizer":
        said = _log_summary(out.text.replace(path, "the file"))
        return None, LoadAttempt(kind, False, said), out.text
    # Not the loader's own failure: an exception escaped it.
    return None, LoadAttempt(kind, False, f"exception: {failure}"), out.text


def _run_loaders(inp: _Input) -> tuple[RunnerPick, Any, str]:
    attempts: list[LoadAttempt] = []
    for kind in RUNNER_ORDER:
        if kind is TokenizerKind.TEKKEN and not _tekken_applies(inp.path):
            attempts.append(LoadAttempt(kind, False, "skipped: name"))
            continue
        if kind is TokenizerKind.LLAMA2C:
            _llama2c_guard(inp)
        obj, attempt, log = _try_load(kind, inp.path)
        attempts.append(attempt)
        if attempt.loaded:
            return RunnerPick(inp.path, kind, tuple(attempts)), obj, log
        if attempt.message.startswith("exception: "):
            escaped = attempt.message.removeprefix("exception: ")
            return RunnerPick(inp.path, None, tuple(attempts), escaped), None, log
    return RunnerPick(inp.path, None, tuple(attempts)), None, ""


def probe_runner(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RunnerPick:
    """Try the runner's loaders on ``path`` in its order; TokenizerError if refused."""
    pick, _, _ = _run_loaders(_read_input(os.fspath(path), max_bytes))
    return pick


def runner_pick(path: str) -> TokenizerKind | None:
    """The loader the ExecuTorch runner would use for ``path``, or None."""
    return probe_runner(path).kind


# ------------------------------------------------------------------ sniffing


_TIKTOKEN_LINE = re.compile(rb"[A-Za-z0-9+/]+=*( \d+)\r?\n")


def sniff_kind(data: bytes, name: str) -> TokenizerKind | None:
    """A cheap guess at the format from the first bytes, for messages only."""
    head = data[:65536]
    stripped = head.lstrip()
    if stripped[:1] == b"{":
        # Keys the Hugging Face format has and Tekken's lacks; "model" can sit
        # past the first 64 KiB behind a long added_tokens list.
        if any(key in head for key in (b'"model"', b'"added_tokens"')):
            return TokenizerKind.HUGGINGFACE
        if name.endswith(TEKKEN_SUFFIX) or b'"config"' in head:
            return TokenizerKind.TEKKEN
        return None
    if _looks_tiktoken(head):
        return TokenizerKind.TIKTOKEN
    if _looks_sentencepiece(head):
        return TokenizerKind.SENTENCEPIECE
    if _looks_llama2c(head):
        return TokenizerKind.LLAMA2C
    return None


def describe_format(data: bytes, name: str) -> str:
    """A short phrase for what a tokenizer file looks like, for messages."""
    kind = sniff_kind(data, name)
    phrases = {
        TokenizerKind.HUGGINGFACE: "a Hugging Face tokenizer.json",
        TokenizerKind.TEKKEN: "a Tekken tokenizer JSON",
        TokenizerKind.TIKTOKEN: "a tiktoken vocabulary",
        TokenizerKind.SENTENCEPIECE: "a SentencePiece model",
        TokenizerKind.LLAMA2C: "a llama2.c tokenizer in pytorch-tokenizers' layout",
    }
    if kind is not None:
        return phrases[kind]
    if not data:
        return "an empty file"
    if data[:4] == b"GGUF":
        return "a GGUF file (llama.cpp), which ExecuTorch cannot read"
    if data[:4] == b"PK\x03\x04":
        return "a zip archive"
    if _looks_karpathy_llama2c(data[:65536]):
        return (
            "a llama2.c tokenizer.bin in Karpathy's original layout, which "
            "ExecuTorch cannot read (pytorch_tokenizers.tools.llama2c.convert "
            "writes the layout it reads)"
        )
    if data.lstrip()[:1] in (b"{", b"["):
        return "JSON that is no tokenizer the runtime knows"
    return "data in no tokenizer format the runtime knows"


def _looks_tiktoken(head: bytes) -> bool:
    lines = head.splitlines(keepends=True)[:3]
    complete = [ln for ln in lines if ln.endswith(b"\n")]
    return bool(complete) and all(_TIKTOKEN_LINE.fullmatch(ln) for ln in complete)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 35:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def _looks_sentencepiece(head: bytes) -> bool:
    # ModelProto field 1 (pieces), whose first field is the piece string and
    # whose next is its score (float, tag 0x15) or type (varint, tag 0x18).
    if head[:1] != b"\x0a":
        return False
    outer, pos = _varint(head, 1)
    if not 2 < outer < 4096 or head[pos : pos + 1] != b"\x0a":
        return False
    inner, pos = _varint(head, pos + 1)
    after = head[pos + inner : pos + inner + 1] if inner >= 0 else b""
    return 0 < inner < outer and after in (b"\x15", b"\x18")


def _looks_llama2c(head: bytes) -> bool:
    if len(head) < 24:
        return False
    vocab, bos, eos, max_len = struct.unpack_from("<4i", head)
    if not (0 < vocab <= _LLAMA2C_RUNTIME_MAX_VOCAB and 0 < max_len <= 65536):
        return False
    if not (0 <= bos < vocab and 0 <= eos < vocab):
        return False
    length = struct.unpack_from("<i", head, 20)[0]
    return 0 < length <= max_len


def _looks_karpathy_llama2c(head: bytes) -> bool:
    # One int (max token length), then (float score, int length, bytes) records.
    if len(head) < 12:
        return False
    max_len = struct.unpack_from("<i", head)[0]
    length = struct.unpack_from("<i", head, 8)[0]
    return 0 < max_len <= 1024 and 0 < length <= max_len


# ------------------------------------------------------------- the loaded runtime


def _ranks_count(native: Any) -> int:
    return int(native.vocab_size()) - _TIKTOKEN_SPECIALS


# One pre-tokenized word this long or longer is not handed to the runtime's
# Hugging Face BPE: pytorch-tokenizers 1.5.0 crashes the process on a word
# of 33,000 to 36,000 characters (32,000 pass). Letters, whitespace or
# punctuation runs: what a pre-tokenizer keeps together.
LONG_WORD_CHARS = 16384
_WORDS = re.compile(r"[^\W\d_]+|\s+|[^\w\s]+")


def _longest_word(text: str) -> int:
    """Length of the longest run a pre-tokenizer would keep together (each
    run is matched whole, once: linear in the text)."""
    if len(text) < LONG_WORD_CHARS:
        return 0
    return max((m.end() - m.start() for m in _WORDS.finditer(text)), default=0)


@dataclass
class RuntimeTokenizer:
    """A tokenizer loaded by the runtime's own code, as the runner would."""

    path: str
    kind: TokenizerKind
    vocab_size: int
    bos_id: int
    eos_id: int
    max_id: int
    special_tokens: Mapping[str, int]
    pick: RunnerPick
    hazards: tuple[str, ...] = ()
    unbounded_regex: bool = False
    _native: Any = field(default=None, repr=False)
    _texts: Callable[[int], str | None] | None = field(default=None, repr=False)
    _sp_control: Callable[[int], bool] | None = field(default=None, repr=False)

    def encode(self, text: str, bos: int = 0, eos: int = 0) -> list[int]:
        """The ids the runner's ``encode(prompt, num_bos, num_eos)`` makes."""
        if not (0 <= bos <= 127 and 0 <= eos <= 127):
            raise ValueError("bos and eos are counts from 0 to 127")
        if self.unbounded_regex:
            raise TokenizerError(
                f"{self.path}: its regex runs on std::regex in the runtime, which "
                "backtracks without limit; not run on any text"
            )
        if self.kind is TokenizerKind.HUGGINGFACE:
            longest = _longest_word(text)
            if longest >= LONG_WORD_CHARS:
                raise TokenizerError(
                    f"{self.path}: the text holds {longest} characters "
                    "without a break; the runtime's Hugging Face encoder crashes "
                    "(segmentation fault) on a word of some 33,000 characters, so "
                    "it is not encoded"
                )
        with quiet_native(capture=True) as out:
            try:
                ids = self._native.encode(text, bos, eos)
            except TypeError:
                failure = "the text is not valid Unicode"
            except Exception as err:
                failure = f"the runtime fails to encode it ({err})"
            else:
                failure = ""
        if not failure and "matching error" in out.text:
            failure = (
                "its regex gave up on this text (match limit); the runtime drops "
                "the rest of the text"
            )
        if failure:
            raise TokenizerError(f"{self.path}: {failure}: {_snippet(text)}")
        return [int(i) for i in ids]

    def decode_piece(self, prev: int, tok: int) -> bytes | str:
        """The piece the runner streams for ``tok`` after ``prev``.

        A str when the piece is valid UTF-8, else its raw bytes (the runner's
        Python callback raises UnicodeDecodeError on those; a C++ app gets the
        bytes). The first piece of a generation is ``decode_piece(t, t)``.
        """
        if not 0 <= tok <= self.max_id:
            raise TokenizerError(
                f"{self.path}: token id {tok} is outside the vocabulary "
                f"(0..{self.max_id})"
            )
        piece = self._native_piece(tok)
        if self._strips_after_bos(prev, tok):
            return _drop_leading_space(piece)
        return piece

    def _native_piece(self, tok: int) -> bytes | str:
        with quiet_native(capture=True) as out:
            try:
                return str(self._native.decode(tok))
            except UnicodeDecodeError as err:
                return bytes(err.object)
            except Exception as err:
                failure = str(err)
        detail = _log_summary(out.text) or failure
        raise TokenizerError(
            f"{self.path}: the runtime cannot decode id {tok}: {detail}"
        )

    def _strips_after_bos(self, prev: int, tok: int) -> bool:
        # The bindings decode with prev == tok; SentencePiece and llama2.c drop
        # a piece's leading space after BOS (sentencepiece.cpp, decode), except
        # for SentencePiece control tokens, which decode to " " before that.
        if self.kind not in (TokenizerKind.SENTENCEPIECE, TokenizerKind.LLAMA2C):
            return False
        if prev != self.bos_id or prev == tok:
            return False
        return not (self._sp_control is not None and self._sp_control(tok))

    def token_text(self, token_id: int) -> str:
        """The vocabulary's own spelling of an id (a special token's name)."""
        if not 0 <= token_id <= self.max_id:
            raise TokenizerError(
                f"{self.path}: token id {token_id} is outside the vocabulary "
                f"(0..{self.max_id})"
            )
        text = self._texts(token_id) if self._texts is not None else None
        if text is not None:
            return text
        piece = self._native_piece(token_id)
        return piece if isinstance(piece, str) else piece.decode("utf-8", "replace")


def _snippet(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _drop_leading_space(piece: bytes | str) -> bytes | str:
    if isinstance(piece, bytes):
        return piece[1:] if piece[:1] == b" " else piece
    return piece[1:] if piece[:1] == " " else piece


# What the runtime logs when it picks a regex engine for a pattern.
_STD_REGEX = "falling back to std::regex"


def _regex_hazards(log: str) -> tuple[str, ...]:
    hazards = []
    pcre = log.count("Creating PCRE2 regex") - log.count(_STD_REGEX)
    if pcre > 0:
        hazards.append(
            f"{pcre} regex(es) need PCRE2 (RE2 refused them); PCRE2's match limit "
            "bounds them, and the runtime drops text past a match that hits it"
        )
    if _STD_REGEX in log:
        hazards.append(
            "a regex neither RE2 nor PCRE2 compiles runs on std::regex, which "
            "backtracks without limit"
        )
    return tuple(hazards)


def load(
    path: str,
    *,
    config_dir: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RuntimeTokenizer:
    """Load ``path`` as the runner would: a tokenizer file or a folder.

    ``config_dir`` names a folder whose ``tokenizer_config.json`` (and
    ``special_tokens_map.json``) go with the ``tokenizer.json`` at ``path``, as
    when they sit in one folder given to the runner; the pair is assembled in a
    private temporary folder, deleted before this returns.
    """
    path = os.fspath(path)
    if config_dir is not None:
        with tempfile.TemporaryDirectory(prefix="etm-tok-") as folder:
            _assemble_folder(path, os.fspath(config_dir), folder, max_bytes)
            try:
                tok = load(folder, max_bytes=max_bytes)
            except TokenizerError as err:
                raise TokenizerError(str(err).replace(folder, path)) from None
        tok.path = path
        return tok
    inp = _read_input(path, max_bytes)
    pick, native, log = _run_loaders(inp)
    if pick.kind is None:
        what = "a folder" if inp.is_dir else describe_format(inp.data, path)
        raise TokenizerError(f"{path}: {what}; {pick.describe()}")
    return _wrap(inp, pick, native, log)


def _assemble_folder(path: str, config_dir: str, folder: str, max_bytes: int) -> None:
    source = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    try:
        _check_size(source, max_bytes, missing_ok=False)
        shutil.copyfile(source, os.path.join(folder, "tokenizer.json"))
        for name in _FOLDER_FILES[1:]:
            config = os.path.join(config_dir, name)
            _check_size(config, max_bytes, missing_ok=True)
            if os.path.isfile(config):
                shutil.copyfile(config, os.path.join(folder, name))
    except OSError as err:
        raise TokenizerError(f"{err.filename}: {err.strerror}") from None


def _wrap(inp: _Input, pick: RunnerPick, native: Any, log: str) -> RuntimeTokenizer:
    kind = pick.kind
    assert kind is not None
    vocab_size = int(native.vocab_size())
    builders = {
        TokenizerKind.HUGGINGFACE: _hf_view,
        TokenizerKind.TEKKEN: _tekken_view,
        TokenizerKind.TIKTOKEN: _tiktoken_view,
        TokenizerKind.SENTENCEPIECE: _sentencepiece_view,
        TokenizerKind.LLAMA2C: _llama2c_view,
    }
    view = builders[kind](inp, native)
    if view.regular_tokens <= 0:
        refused = "; ".join(
            f"{a.kind.value}: {_clip(a.message, 90)}"
            for a in pick.attempts
            if not a.loaded and a.message and not a.message.startswith("skipped")
        )
        raise TokenizerError(
            f"{inp.path}: the runtime loads it as {kind.value} with no "
            f"regular tokens (vocabulary {vocab_size}); it cannot encode text"
            + (f" (refused before: {refused})" if refused else "")
        )
    return RuntimeTokenizer(
        path=inp.path,
        kind=kind,
        vocab_size=vocab_size,
        bos_id=int(native.bos_tok()),
        eos_id=int(native.eos_tok()),
        max_id=view.max_id if view.max_id >= 0 else vocab_size - 1,
        special_tokens=view.special_tokens,
        pick=pick,
        hazards=_regex_hazards(log),
        unbounded_regex=_STD_REGEX in log,
        _native=native,
        _texts=view.texts,
        _sp_control=view.is_control,
    )


@dataclass
class _View:
    """Per-format facts read beside the native object."""

    regular_tokens: int
    special_tokens: Mapping[str, int]
    texts: Callable[[int], str | None] | None = None
    max_id: int = -1
    is_control: Callable[[int], bool] | None = None


def _hf_view(inp: _Input, native: Any) -> _View:
    doc = _mapping(inp.doc)
    specials = _added_tokens(doc.get("added_tokens"))
    vocab = _mapping(_mapping(doc.get("model")).get("vocab"))
    pieces = {v: k for k, v in vocab.items() if isinstance(v, int)}
    names = {v: k for k, v in specials.items()}
    all_ids = list(pieces) + list(names)
    regular = int(native.vocab_size()) - len(specials)
    return _View(
        regular_tokens=regular,
        special_tokens=specials,
        texts=lambda i: names.get(i, pieces.get(i)),
        max_id=max(all_ids) if all_ids else -1,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _added_tokens(entries: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            content, token_id = entry.get("content"), entry.get("id")
            if isinstance(content, str) and isinstance(token_id, int):
                found[content] = token_id
    return found


def _decoded_specials(native: Any, ids: Iterable[int]) -> dict[str, int]:
    # The runtime decodes a special id to its name: ask it, not a copy of its list.
    found: dict[str, int] = {}
    with quiet_native():
        for token_id in ids:
            with contextlib.suppress(Exception):
                found[str(native.decode(token_id))] = token_id
    return found


def _tiktoken_view(inp: _Input, native: Any) -> _View:
    ranks = _ranks_count(native)
    specials = _decoded_specials(native, range(ranks, ranks + _TIKTOKEN_SPECIALS))
    names = {v: k for k, v in specials.items()}
    table: dict[int, str] | None = None

    def text(token_id: int) -> str | None:
        nonlocal table
        if token_id in names:
            return names[token_id]
        if table is None:
            table = _tiktoken_table(inp.data)
        return table.get(token_id)

    return _View(ranks, specials, text, ranks + _TIKTOKEN_SPECIALS - 1)


def _tiktoken_table(data: bytes) -> dict[int, str]:
    table: dict[int, str] = {}
    for line in data.splitlines():
        token, _, rank = line.partition(b" ")
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(token, validate=True)
            table[int(rank)] = raw.decode("utf-8", "backslashreplace")
    return table


def _tekken_view(inp: _Input, native: Any) -> _View:
    config = _mapping(_mapping(inp.doc).get("config"))
    count = config.get("default_num_special_tokens", _TEKKEN_DEFAULT_SPECIALS)
    count = count if isinstance(count, int) and count >= 0 else 0
    specials = _decoded_specials(native, range(min(count, int(native.vocab_size()))))
    return _View(int(native.vocab_size()) - count, specials)


def _sentencepiece_view(inp: _Input, native: Any) -> _View:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(inp.data)
    except Exception:
        return _View(int(native.vocab_size()), {})
    size = processor.GetPieceSize()
    return _View(
        regular_tokens=size,
        special_tokens={},
        texts=lambda i: processor.IdToPiece(i) if 0 <= i < size else None,
        is_control=lambda i: 0 <= i < size and bool(processor.IsControl(i)),
    )


def _llama2c_view(inp: _Input, native: Any) -> _View:
    pieces = _llama2c_pieces(inp.data, int(native.vocab_size()))
    return _View(
        regular_tokens=int(native.vocab_size()),
        special_tokens={},
        texts=lambda i: pieces[i] if 0 <= i < len(pieces) else None,
    )


def _llama2c_pieces(data: bytes, vocab: int) -> list[str]:
    pieces: list[str] = []
    pos = 16
    while len(pieces) < vocab and pos + 8 <= len(data):
        length = struct.unpack_from("<i", data, pos + 4)[0]
        chunk = data[pos + 8 : pos + 8 + max(length, 0)]
        pieces.append(chunk.decode("utf-8", "backslashreplace"))
        pos += 8 + max(length, 0)
    return pieces + ["<pad>"] * (vocab - len(pieces))


# ------------------------------------------------------------------ reference


@dataclass
class ReferenceTokenizer:
    """The same file read by its reference library."""

    kind: TokenizerKind
    library: str
    special_tokens: Mapping[str, int]
    _encode: Callable[[str], list[int]] = field(repr=False)
    _decode: Callable[[list[int]], str] = field(repr=False)

    def encode(self, text: str) -> list[int]:
        """Ids without added BOS/EOS; special-token text matched as special."""
        return self._encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._decode(list(ids))


def reference(
    path: str, *, kind: TokenizerKind | None = None
) -> ReferenceTokenizer | None:
    """The reference library's view of ``path``, or None when there is none.

    tokenizer.json: Hugging Face ``tokenizers``; SentencePiece: the
    ``sentencepiece`` package; tiktoken: the ``tiktoken`` package with the
    pattern and special tokens pytorch-tokenizers' own Python tokenizer uses
    for these files (Llama 3's). Tekken and llama2.c files have none. A file
    its reference library refuses raises TokenizerError. ``kind`` (the
    runtime's, when already known) saves probing the runtime again.
    """
    path = os.fspath(path)
    kind = kind or runner_pick(path)
    json_path = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if kind is TokenizerKind.HUGGINGFACE:
        return _hf_reference(json_path)
    if kind is TokenizerKind.SENTENCEPIECE:
        return _sentencepiece_reference(path)
    if kind is TokenizerKind.TIKTOKEN:
        return _tiktoken_reference(path)
    return None


def _library(name: str) -> str:
    from importlib.metadata import version

    try:
        return f"{name} {version(name)}"
    except Exception:
        return name


def _hf_reference(path: str) -> ReferenceTokenizer:
    import tokenizers

    try:
        tok = tokenizers.Tokenizer.from_file(path)
    except Exception as err:
        raise TokenizerError(
            f"{path}: Hugging Face tokenizers refuses it: {err}"
        ) from None
    specials = {t.content: i for i, t in tok.get_added_tokens_decoder().items()}
    return ReferenceTokenizer(
        TokenizerKind.HUGGINGFACE,
        _library("tokenizers"),
        specials,
        lambda text: list(tok.encode(text, add_special_tokens=False).ids),
        lambda ids: str(tok.decode(ids, skip_special_tokens=False)),
    )


def _sentencepiece_reference(path: str) -> ReferenceTokenizer:
    import sentencepiece

    try:
        sp = sentencepiece.SentencePieceProcessor(model_file=path)
    except Exception as err:
        raise TokenizerError(f"{path}: sentencepiece refuses it: {err}") from None
    return ReferenceTokenizer(
        TokenizerKind.SENTENCEPIECE,
        _library("sentencepiece"),
        {},
        lambda text: [int(i) for i in sp.encode(text)],
        lambda ids: str(sp.decode(ids)),
    )


def _uncached(load: Callable[[str], dict[bytes, int]], path: str) -> dict[bytes, int]:
    """``load(path)`` with tiktoken's file cache off.

    By default tiktoken copies the file it reads into $TMPDIR/data-gym-cache,
    keyed by its path, and later reads that copy: a file edited in place
    would be compared as it was. An empty TIKTOKEN_CACHE_DIR turns the cache
    off. ``path`` is absolute, so never holds "://" (which tiktoken would
    fetch as a URL).
    """
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        return load(path)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved


def _tiktoken_reference(path: str) -> ReferenceTokenizer | None:
    import tiktoken
    from pytorch_tokenizers.constants import CL100K_PAT_STR, LLAMA_SPECIAL_TOKENS
    from tiktoken.load import load_tiktoken_bpe

    try:
        ranks = _uncached(load_tiktoken_bpe, os.path.abspath(path))
        specials = {t: len(ranks) + i for i, t in enumerate(LLAMA_SPECIAL_TOKENS)}
        enc = tiktoken.Encoding(
            name=os.path.basename(path),
            pat_str=CL100K_PAT_STR,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )
    except Exception as err:
        raise TokenizerError(f"{path}: tiktoken refuses it: {err}") from None
    if not ranks:
        return None
    return ReferenceTokenizer(
        TokenizerKind.TIKTOKEN,
        _library("tiktoken"),
        specials,
        lambda text: list(enc.encode(text, allowed_special="all")),
        lambda ids: enc.decode(ids),
    )


# ------------------------------------------------------------------ agreement


@dataclass(frozen=True)
class Mismatch:
    """One text on which the runtime and the reference part ways.

    ``aspect`` is ``encode`` (different ids), ``decode`` (the runner's streamed
    pieces of the reference ids spell different text), or ``error`` (the
    runtime fails on the text; ``runtime`` is then its message).
    """

    text: str
    aspect: str
    runtime: tuple[int, ...] | str
    reference: tuple[int, ...] | str


def streamed_text(runtime: RuntimeTokenizer, ids: Sequence[int]) -> str:
    """The text the runner's pieces for ``ids`` join into (bytes joined first)."""
    out = bytearray()
    prev = ids[0] if ids else 0
    for tok in ids:
        piece = runtime.decode_piece(prev, tok)
        out += piece if isinstance(piece, bytes) else piece.encode("utf-8")
        prev = tok
    return out.decode("utf-8", "replace")


def _same_text(got: str, want: str) -> bool:
    # Where a text starts, one space is a detokenizer convention (SentencePiece's
    # dummy prefix, kept by some decoders and dropped by others), not content.
    return got == want or got == " " + want or " " + got == want


def compare(
    runtime: RuntimeTokenizer, ref: ReferenceTokenizer, texts: Iterable[str]
) -> list[Mismatch]:
    """Texts on which the runtime's encode or streamed decode differ from ref's."""
    found: list[Mismatch] = []
    for text in texts:
        expected = ref.encode(text)
        try:
            got = runtime.encode(text)
        except TokenizerError as err:
            said = str(err).removeprefix(f"{runtime.path}: ")
            found.append(Mismatch(text, "error", said, tuple(expected)))
            continue
        if got != expected:
            found.append(Mismatch(text, "encode", tuple(got), tuple(expected)))
        found.extend(_decode_mismatch(runtime, ref, text, expected))
    return found


def _decode_mismatch(
    runtime: RuntimeTokenizer, ref: ReferenceTokenizer, text: str, ids: list[int]
) -> list[Mismatch]:
    want = ref.decode(ids)
    try:
        got = streamed_text(runtime, ids)
    except TokenizerError as err:
        return [
            Mismatch(text, "decode", str(err).removeprefix(f"{runtime.path}: "), want)
        ]
    return [] if _same_text(got, want) else [Mismatch(text, "decode", got, want)]


# ---------------------------------------------------------- special token ids


@dataclass(frozen=True)
class SpecialIds:
    bos_id: int
    eos_id: int


@dataclass(frozen=True)
class SpecialResolution:
    """BOS/EOS as the runtime resolves them, with and without the bundle's config.

    ``with_config`` is the folder (tokenizer.json + tokenizer_config.json) a
    runtime builds from the bundle; None for formats whose loader reads no
    config. ``declared`` maps each declared token text to the single id the
    runtime encodes it to, or None when it is not one token.
    """

    kind: TokenizerKind
    file_alone: SpecialIds
    with_config: SpecialIds | None
    declared: Mapping[str, int | None]
    folder: str | None = None

    @property
    def differs(self) -> bool:
        return self.with_config is not None and self.with_config != self.file_alone


def resolve_special_ids(
    tokenizer_path: str,
    special_tokens: Mapping[str, Any],
    workdir: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SpecialResolution:
    """The ids the runtime uses with the bundle's special tokens, and without.

    ``special_tokens`` is the bundle's mapping (``bos``: text or None, ``eos``:
    list of texts, optionally ``pad``/``unk``). For a Hugging Face tokenizer a
    folder holding a copy of it and a ``tokenizer_config.json`` is written in a
    new subfolder of ``workdir`` (the caller's, and the only place written);
    the runtime reads a single ``eos_token``, so the first EOS text goes there.
    """
    alone = load(tokenizer_path, max_bytes=max_bytes)
    declared = _declared_ids(alone, special_tokens)
    file_ids = SpecialIds(alone.bos_id, alone.eos_id)
    if alone.kind is not TokenizerKind.HUGGINGFACE:
        return SpecialResolution(alone.kind, file_ids, None, declared)
    folder = tempfile.mkdtemp(prefix="tokenizer-", dir=workdir)
    _write_config_folder(tokenizer_path, special_tokens, folder)
    configured = load(folder, max_bytes=max_bytes)
    with_config = SpecialIds(configured.bos_id, configured.eos_id)
    return SpecialResolution(alone.kind, file_ids, with_config, declared, folder)


def _declared_texts(special_tokens: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for value in special_tokens.values():
        values = value if isinstance(value, list) else [value]
        texts.extend(v for v in values if isinstance(v, str) and v not in texts)
    return texts


def _declared_ids(
    tok: RuntimeTokenizer, special_tokens: Mapping[str, Any]
) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for text in _declared_texts(special_tokens):
        try:
            ids = tok.encode(text)
        except TokenizerError:
            ids = []
        found[text] = ids[0] if len(ids) == 1 else None
    return found


def runtime_config(special_tokens: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tokenizer_config.json`` a runtime writes beside a bundle's
    ``tokenizer.json``: the runtime reads one ``eos_token``, so the first EOS."""
    eos = special_tokens.get("eos")
    eos_list = eos if isinstance(eos, list) else [eos]
    config: dict[str, Any] = {
        "bos_token": special_tokens.get("bos"),
        "eos_token": eos_list[0] if eos_list else None,
    }
    for key in ("pad", "unk"):
        if isinstance(special_tokens.get(key), str):
            config[f"{key}_token"] = special_tokens[key]
    return config


def token_variables(special_tokens: Mapping[str, Any]) -> dict[str, str]:
    """A bundle's special tokens as a chat template's variables
    (``bos_token``, ``eos_token``...): what the runtime's config says, the
    unset ones left undefined."""
    config = runtime_config(special_tokens)
    return {k: v for k, v in config.items() if isinstance(v, str)}


def _write_config_folder(
    tokenizer_path: str, special_tokens: Mapping[str, Any], folder: str
) -> None:
    source = tokenizer_path
    if os.path.isdir(source):
        source = os.path.join(source, "tokenizer.json")
    config = runtime_config(special_tokens)
    try:
        shutil.copyfile(source, os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as fh:
            json.dump(config, fh, indent=1)
    except OSError as err:
        raise TokenizerError(f"{err.filename}: {err.strerror}") from None


__all__ = [
    "DEFAULT_MAX_BYTES",
    "LLAMA2C_MAX_VOCAB",
    "RUNNER_ORDER",
    "SAMPLE_TEXTS",
    "LoadAttempt",
    "Mismatch",
    "NativeOutput",
    "ReferenceTokenizer",
    "RunnerPick",
    "RuntimeTokenizer",
    "SpecialIds",
    "SpecialResolution",
    "TokenizerError",
    "TokenizerKind",
    "compare",
    "describe_format",
    "load",
    "probe_runner",
    "quiet_native",
    "reference",
    "resolve_special_ids",
    "runner_pick",
    "runtime_config",
    "sniff_kind",
    "streamed_text",
    "token_variables",
]
