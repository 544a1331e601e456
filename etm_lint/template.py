"""Chat templates rendered the way Hugging Face transformers renders them.

``render`` gives the same text as ``tokenizer.apply_chat_template(...,
tokenize=False)``: Jinja2's immutable sandbox with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, the ``{% generation %}``
tag, a ``tojson`` that keeps non-ASCII text, ``raise_exception``,
``strftime_now``, a ``dict`` and a ``namespace`` that cannot reach Python
internals, and the same preparation of messages, tools and documents.

Templates are untrusted programs, so rendering is also bounded: every loop
iteration, call, filter and string-building operator goes through a guard that
enforces a time limit and an output limit in the rendering thread itself, and
operations whose result would be huge are refused before they run.  Reading an
attribute that the sandbox forbids is an error at once, where transformers
would quietly render an empty string.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import itertools
import json
import re
import string
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime
from types import TracebackType
from typing import Any, NoReturn

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.nodes as nodes
import jinja2.sandbox
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.utils import Namespace, generate_lorem_ipsum, missing

from etm_lint.errors import EtmError

__all__ = [
    "HF_SPECIAL_TOKEN_NAMES",
    "STANDARD_CONVERSATIONS",
    "UNSET",
    "CompiledTemplate",
    "ProbeCase",
    "TemplateError",
    "TemplateErrorKind",
    "compile_template",
    "end_of_turn_marker",
    "probe_cases",
    "render",
    "select_template",
    "special_tokens_from_config",
    "template_takes_tools",
]

# The named special tokens transformers passes to every template (its
# ``special_tokens_map``); tokens set to None are not passed at all.
HF_SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

# Names that transformers fills itself; ``extra`` may not override them.
_RESERVED_VARIABLES = ("messages", "tools", "documents", "add_generation_prompt")

# Older spellings of a message's reasoning; transformers copies the first one
# present under ``thinking`` (read by gpt-oss) and ``reasoning_content``.
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "

_MAX_TEMPLATE_CHARS = 1 << 20
# Jinja parses some 100,000 tokens a second, and constant folding revisits
# every subtree at every level it compiles, so compiling grows with the cube
# of the nesting (300 nested attribute lookups took 13 s) and with the number
# of syntax nodes (200,000 took 10 s). Of 126 real chat templates the largest
# has 2,334 tokens and 1,238 nodes, the deepest nests 20 levels.
_MAX_TEMPLATE_TOKENS = 20_000
_MAX_TEMPLATE_DEPTH = 64
_MAX_TEMPLATE_NODES = 8_000
# Integers past this many bits only appear in templates built to burn CPU.
_MAX_INT_BITS = 1 << 16
# A single intermediate value may be this many times the output limit, and
# all strings built during one render together this many times.
_VALUE_FACTOR = 4
_PRODUCED_FACTOR = 64
# Limits on what Jinja may compute while folding constants at compile time.
_FOLD_TIME_LIMIT_S = 2.0
_FOLD_MAX_OUTPUT = 1_000_000
# How many guarded operations pass between two looks at the clock.
_CLOCK_EVERY = 64


class _Unset(enum.Enum):
    UNSET = "unset"


# Pass as ``tools`` or ``documents`` to leave the variable undefined, as a
# plain Jinja2 render (llama.cpp's goldens, minja) does; transformers always
# defines both, as None when not given.
UNSET = _Unset.UNSET


class TemplateErrorKind(str, enum.Enum):
    """Why a template could not be rendered."""

    SYNTAX = "syntax"
    RAISED = "raised"
    UNDEFINED = "undefined"
    SANDBOX = "sandbox"
    TIME_LIMIT = "time-limit"
    OUTPUT_LIMIT = "output-limit"
    RUNTIME = "runtime"
    INPUT = "input"

    def __str__(self) -> str:
        return str(self.value)


_KIND_LABELS = {
    TemplateErrorKind.SYNTAX: "syntax error",
    TemplateErrorKind.RAISED: "template raised an exception",
    TemplateErrorKind.UNDEFINED: "undefined value",
    TemplateErrorKind.SANDBOX: "blocked by the sandbox",
    TemplateErrorKind.TIME_LIMIT: "time limit",
    TemplateErrorKind.OUTPUT_LIMIT: "output limit",
    TemplateErrorKind.RUNTIME: "render error",
    TemplateErrorKind.INPUT: "bad input",
}


class TemplateError(EtmError):
    """A chat template that fails to compile or render, told in one line.

    ``detail`` is the message as the template engine (or the template's own
    ``raise_exception``) gave it; ``line`` is the template line, when known;
    ``variable`` names the undefined variable for strict rendering.
    """

    def __init__(
        self,
        kind: TemplateErrorKind,
        detail: str,
        *,
        line: int | None = None,
        variable: str | None = None,
        source: str = "chat template",
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.line = line
        self.variable = variable
        self.source = source
        where = f", line {line}" if line else ""
        text = " ".join(detail.split()) or "(no message)"
        super().__init__(f"{source}{where}: {_KIND_LABELS[kind]}: {text}")

    def with_source(self, source: str) -> TemplateError:
        """The same error, naming another file (a bundle member, say)."""
        return TemplateError(
            self.kind,
            self.detail,
            line=self.line,
            variable=self.variable,
            source=source,
        )


class _LimitReached(BaseException):
    """A render limit; a BaseException so no ``except Exception`` swallows it."""

    def __init__(self, kind: TemplateErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _FoldRefused(Exception):
    """A guard refused an operation Jinja tried to fold while compiling."""


class _TemplateRaised(jinja2.TemplateError):
    """What the template's ``raise_exception(message)`` raises."""


class _UndefinedName(UndefinedError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is undefined")
        self.name = name


# -- the per-render budget ----------------------------------------------------


@dataclasses.dataclass
class _RenderState:
    """Limits and counters of one render, seen by every guard through a
    context variable, so one compiled template can serve many renders."""

    time_limit_s: float
    deadline: float
    max_output: int
    max_value: int
    max_produced: int
    now: datetime | None
    folding: bool = False
    ticks: int = 0
    produced: int = 0

    @classmethod
    def for_limits(
        cls, time_limit_s: float, max_output: int, now: datetime | None = None
    ) -> _RenderState:
        limit = max(int(max_output), 1)
        return cls(
            time_limit_s=time_limit_s,
            deadline=time.monotonic() + time_limit_s,
            max_output=limit,
            max_value=max(limit * _VALUE_FACTOR, 1 << 12),
            max_produced=max(limit * _PRODUCED_FACTOR, 1 << 16),
            now=now,
        )

    def stop(self, kind: TemplateErrorKind, detail: str) -> NoReturn:
        if self.folding:
            # Jinja then leaves the expression to be evaluated when rendering,
            # where the same guard stops the render.
            raise _FoldRefused(detail)
        raise _LimitReached(kind, detail)

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            self.out_of_time()

    def out_of_time(self) -> NoReturn:
        self.stop(
            TemplateErrorKind.TIME_LIMIT,
            f"rendering took longer than {self.time_limit_s:g} s",
        )

    def refuse_size(self, size: int, what: str) -> None:
        if size > self.max_value:
            self.stop(
                TemplateErrorKind.OUTPUT_LIMIT,
                f"{what} would be about {size} characters, more than the "
                f"{self.max_value} allowed for one value",
            )

    def charge(self, result: object) -> None:
        if isinstance(result, (str, bytes, list, tuple, dict)):
            self.produced += len(result)
            if self.produced > self.max_produced:
                self.stop(
                    TemplateErrorKind.OUTPUT_LIMIT,
                    f"the template built more than {self.max_produced} "
                    "characters of intermediate text",
                )


_STATE: ContextVar[_RenderState | None] = ContextVar("etm_template_state", default=None)


# -- size estimates, made before an operation runs ----------------------------


class _Exit:
    __slots__ = ("oid",)

    def __init__(self, oid: int) -> None:
        self.oid = oid


def _text_size(
    value: object,
    cap: int,
    *,
    indent: int = 0,
    str_factor: int = 1,
    per_item: int = 2,
) -> int:
    """About how long ``str(value)`` (or its JSON) is; stops counting past cap.

    ``indent`` is added per nesting level of every element, ``per_item`` for
    every element (the separator), ``str_factor`` scales string lengths
    (escaping).

    Containers are walked without recursion; shared references are counted
    each time they appear, as ``repr`` prints them, and a container met again
    on its own path (a cycle) counts as a few characters, as ``repr`` does.
    """
    total = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    on_path: set[int] = set()
    while stack and total <= cap:
        item, depth = stack.pop()
        if isinstance(item, _Exit):
            on_path.discard(item.oid)
            continue
        size = _scalar_size(item, str_factor)
        if size is not None:
            total += size + depth * indent
            continue
        children = _children(item)
        if children is None:
            total += 64
            continue
        if id(item) in on_path:
            total += 5
            continue
        on_path.add(id(item))
        stack.append((_Exit(id(item)), 0))
        total += 2 + depth * indent
        # Scalars, the bulk of any big container, are sized here in place.
        for child in children:
            size = _scalar_size(child, str_factor)
            if size is None:
                stack.append((child, depth + 1))
            else:
                total += size + per_item + (depth + 1) * indent
                if total > cap:
                    break
    return total


def _text_sizes(values: Iterable[object], cap: int) -> list[int]:
    """The sizes of several values, walking at most ``cap`` characters in all:
    once the budget is spent, the remaining values count as ``cap`` each."""
    sizes: list[int] = []
    left = cap
    for value in values:
        size = _text_size(value, left) if left >= 0 else cap
        sizes.append(size)
        left -= size
    return sizes


def _scalar_size(item: object, str_factor: int) -> int | None:
    kind = type(item)
    if kind is str:
        return len(item) * str_factor + 2  # type: ignore[arg-type]
    if kind is int:
        return item.bit_length() // 3 + 2  # type: ignore[attr-defined]
    if kind is bool or item is None:
        return 5
    if kind is float:
        return 24
    if isinstance(item, str):
        return len(item) * str_factor + 2
    if isinstance(item, (bytes, bytearray)):
        return len(item) * 4 + 3
    if isinstance(item, jinja2.Undefined):
        return 2
    return None


def _children(item: object) -> Iterable[object] | None:
    if isinstance(item, Namespace):
        return itertools.chain.from_iterable(_namespace_attrs(item).items())
    if isinstance(item, Mapping):
        return itertools.chain.from_iterable(item.items())
    if isinstance(item, (list, tuple, set, frozenset)):
        return item
    return None


def _namespace_attrs(ns: Namespace) -> dict[str, Any]:
    attrs = object.__getattribute__(ns, "_Namespace__attrs")
    return attrs if isinstance(attrs, dict) else {}


_SMALL_SCALARS = frozenset((int, float, bool, type(None)))
_GENTLE_NUMBER_OPS = frozenset(("+", "%"))


def _check_text(value: object, what: str) -> None:
    """Refuse to turn a value into text whose size exceeds one value's limit."""
    if type(value) in _SMALL_SCALARS:
        return  # Python itself refuses to print an int of over 4300 digits
    state = _STATE.get()
    if state is None:
        return
    if isinstance(value, str):
        state.refuse_size(len(value), what)
    else:
        state.refuse_size(_text_size(value, state.max_value), what)


_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])"
)


def _percent_size(fmt: str, args: object, cap: int) -> int:
    """About how long ``fmt % args`` is."""
    specs = list(_PERCENT_SPEC.finditer(fmt))
    if isinstance(args, tuple):
        values: list[object] = list(args)
        per_spec = 0
        total = sum(_text_sizes(values, cap))
    else:
        values = list(args.values()) if isinstance(args, Mapping) else [args]
        per_spec = max(_text_sizes(values, cap), default=0)
        total = 0
    star_values = iter(v for v in values if isinstance(v, int))
    for spec in specs:
        for number in spec.group(1, 2):
            if number == "*":
                total += abs(next(star_values, 0))
            elif number:
                total += int(number)
        total += per_spec
    return len(fmt) + total


def _format_size(
    fmt: str, args: Sequence[object], kwargs: Mapping[str, object], cap: int
) -> int:
    """About how long ``fmt.format(*args, **kwargs)`` is."""
    values = [*args, *kwargs.values()]
    biggest = max(_text_sizes(values, cap), default=0)
    widest = max((abs(v) for v in values if isinstance(v, int)), default=0)
    total = len(fmt)
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None:
            continue
        total += biggest
        total += sum(int(n) for n in re.findall(r"\d+", spec or ""))
        if spec and "{" in spec:
            total += widest
    return total


# -- guarded str and bytes methods --------------------------------------------


def _method_estimate(name: str, base: str | bytes, args: tuple[Any, ...]) -> int | None:
    """About how long the result of ``base.name(*args)`` is, when it can grow."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        width = args[0]
        return max(len(base), width) if isinstance(width, int) else None
    if name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        tab: Any = "\t" if isinstance(base, str) else b"\t"
        return len(base) + base.count(tab) * max(size, 0)
    if name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        if not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
            return None
        hits = base.count(old) if old else len(base) + 1  # type: ignore[arg-type]
        if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
            hits = min(hits, args[2])
        return len(base) + hits * len(new)
    if name == "translate" and args and isinstance(args[0], Mapping):
        longest = max(
            (len(v) for v in args[0].values() if isinstance(v, str)), default=1
        )
        return len(base) * max(longest, 1)
    return None


def _guard_method_call(
    state: _RenderState, obj: Any, args: tuple[Any, ...]
) -> tuple[Any, ...]:
    base = getattr(obj, "__self__", None)
    if not isinstance(base, (str, bytes)):
        return args
    name = getattr(obj, "__name__", "")
    if name == "join" and args and isinstance(args[0], Iterable):
        items = list(args[0])
        joined = sum(_text_sizes(items, state.max_value))
        state.refuse_size(joined + len(base) * max(len(items) - 1, 0), "join()")
        return (items, *args[1:])
    estimate = _method_estimate(name, base, args)
    if estimate is not None:
        state.refuse_size(estimate, f"{name}()")
    return args


# -- guarded filters ----------------------------------------------------------

# Filters that turn their input into text: a container that prints huge (many
# references to one long string) is refused before it is printed.
_STRINGIFYING_FILTERS = frozenset(
    {
        *("capitalize", "center", "e", "escape", "forceescape", "format"),
        *("indent", "lower", "pprint", "replace", "safe", "string"),
        *("striptags", "title", "trim", "truncate", "upper", "urlencode"),
        *("urlize", "wordcount", "wordwrap", "xmlattr"),
    }
)


def _bound(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = _signature(func).bind(*args, **kwargs)
    except TypeError:
        return {}
    bound.apply_defaults()
    return dict(bound.arguments)


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def _size_of(value: object) -> int:
    return len(value) if isinstance(value, (str, bytes)) else 0


def _filter_estimate(name: str, value: Any, a: dict[str, Any], cap: int) -> int | None:
    """About how long a filter's result is, for the filters that multiply."""
    if name == "center":
        return _method_estimate("center", str(value), (a.get("width"),))
    if name == "indent":
        width = a.get("width", 4)
        pad = len(width) if isinstance(width, str) else width
        if not isinstance(pad, int):
            return None
        size = _text_size(value, cap)
        lines = value.count("\n") + 1 if isinstance(value, str) else size
        return size + lines * max(pad, 0)
    if name == "wordwrap":
        return _wordwrap_estimate(value, a, cap)
    if name == "replace":
        return _method_estimate(
            "replace", str(value), (a.get("old"), a.get("new"), a.get("count") or -1)
        )
    if name == "urlize":
        extra = _size_of(a.get("target")) + _size_of(a.get("rel"))
        return _text_size(value, cap) * (2 + extra)
    if name == "format":
        return _percent_size(str(value), a.get("kwargs") or a.get("args") or (), cap)
    if name == "tojson":
        return _tojson_estimate(value, a, cap)
    if name in ("batch", "slice"):
        count = a.get("linecount", a.get("slices"))
        return abs(count) if isinstance(count, int) else None
    return None


def _tojson_estimate(value: Any, a: dict[str, Any], cap: int) -> int:
    indent = a.get("indent")
    spaces = len(indent) if isinstance(indent, str) else indent or 0
    separators = a.get("separators") or ()
    per_item = 2 + sum(len(s) for s in separators if isinstance(s, str))
    return _text_size(
        value,
        cap,
        indent=max(int(spaces), 0) + 2,
        str_factor=6 if a.get("ensure_ascii") else 1,
        per_item=per_item,
    )


def _wordwrap_estimate(value: Any, a: dict[str, Any], cap: int) -> int:
    # A line breaks at a space or, for long words, every ``width`` characters.
    wrap = str(a.get("wrapstring") or "\n")
    width = a.get("width", 79)
    size = _text_size(value, cap)
    text = value if isinstance(value, str) else ""
    per_width = size // width if isinstance(width, int) and width > 0 else size
    breaks = min(size, text.count(" ") + per_width + 1)
    return size + breaks * len(wrap)


_ESTIMATED_FILTERS = frozenset(
    {
        *("batch", "center", "format", "indent", "replace", "slice"),
        *("tojson", "urlize", "wordwrap"),
    }
)


def _guard_join(
    state: _RenderState, args: tuple[Any, ...], at: int, kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    if not isinstance(args[at], Iterable):
        return args
    items = list(args[at])
    sep = kwargs.get("d", args[at + 1] if len(args) > at + 1 else "")
    joined = sum(_text_sizes(items, state.max_value))
    state.refuse_size(joined + _text_size(sep, state.max_value) * len(items), "join")
    return (*args[:at], items, *args[at + 1 :])


def _guard_sum(
    state: _RenderState, args: tuple[Any, ...], at: int, kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    start = kwargs.get("start", args[at + 2] if len(args) > at + 2 else 0)
    if isinstance(start, (int, float)):
        return args
    if not isinstance(args[at], Iterable):
        return args
    # Adding up sequences copies the running total at every step.
    items = list(args[at])
    joined = sum(_text_sizes(items, state.max_value))
    state.refuse_size(joined, "sum")
    if joined * len(items) > state.max_produced:
        state.refuse_size(state.max_value + 1, "sum of sequences")
    return (*args[:at], items, *args[at + 1 :])


_MATERIALIZING_FILTERS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "join": _guard_join,
    "sum": _guard_sum,
}


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so it ticks the clock, refuses huge results up front and
    charges what it builds."""
    at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    # Jinja's async-capable filters take the eval context only to drop it
    # before calling the plain function whose signature we bind against.
    inner_takes_context = getattr(inspect.unwrap(func), "jinja_pass_arg", None)
    skip = 0 if inner_takes_context is not None else at
    stringifies = name in _STRINGIFYING_FILTERS
    materialize = _MATERIALIZING_FILTERS.get(name)
    estimated = name in _ESTIMATED_FILTERS

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        state = _STATE.get()
        if state is None or len(args) <= at:
            return func(*args, **kwargs)
        state.tick()
        value = args[at]
        if stringifies and type(value) is not str:
            state.refuse_size(_text_size(value, state.max_value), f"|{name}")
        if materialize is not None:
            args = materialize(state, args, at, kwargs)
        if estimated:
            bound = _bound(func, args[skip:], kwargs)
            estimate = _filter_estimate(name, value, bound, state.max_value)
            if estimate is not None:
                state.refuse_size(estimate, f"|{name}")
        result = func(*args, **kwargs)
        state.charge(result)
        return result

    return guarded


# -- the template's globals ---------------------------------------------------


def _raise_exception(message: object) -> NoReturn:
    raise _TemplateRaised(str(message))


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # transformers' argument order: ``tojson(4)`` sets ensure_ascii, not indent.
    return json.dumps(
        x,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
    )


def _strftime_now(format: str) -> str:
    state = _STATE.get()
    when = state.now if state is not None and state.now is not None else None
    return (when or datetime.now()).strftime(format)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    state = _STATE.get()
    if state is not None:
        state.refuse_size(abs(n) * abs(max) * 12, "lipsum()")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class _TemplateDict:
    """``dict`` for templates: builds dicts, with nothing else to reach."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


def _check_namespace_key(name: object) -> None:
    if isinstance(name, str) and name.startswith("_"):
        raise SecurityError(
            f"a namespace cannot hold an attribute starting with '_' ({name!r})"
        )


class _SafeNamespace(Namespace):
    """``namespace()`` that refuses underscore names, as transformers' does."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for key in attrs:
            _check_namespace_key(key)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _check_namespace_key(name)
        super().__setitem__(name, value)


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` renders its body as is."""

    tags = {"generation"}  # noqa: RUF012 (Jinja reads it from the class)

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_body")
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _body(self, caller: Callable[[], str]) -> str:
        return caller()


class _TokenLimit(jinja2.ext.Extension):
    """Stops the parser past _MAX_TEMPLATE_TOKENS tokens: parsing costs time
    per token, and nothing else bounds their number but the text's length."""

    def filter_stream(self, stream: Any) -> Iterator[Any]:
        for count, token in enumerate(stream, 1):
            if count > _MAX_TEMPLATE_TOKENS:
                raise TemplateError(
                    TemplateErrorKind.INPUT,
                    f"template has more than {_MAX_TEMPLATE_TOKENS} tokens",
                    line=token.lineno,
                )
            yield token


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` passes here before it is printed; text is
    counted as it is collected, so only containers need a look."""
    if type(value) is not str:
        _check_text(value, "printed value")
    return value


# -- undefined values ---------------------------------------------------------


def _strict_name(method: Callable[..., Any]) -> Callable[..., Any]:
    def checked(self: jinja2.Undefined, *args: Any) -> Any:
        if self._undefined_obj is missing and self._undefined_hint is None:
            raise _UndefinedName(str(self._undefined_name))
        return method(self, *args)

    return checked


class _StrictNameUndefined(jinja2.Undefined):
    """Fails when an undefined *variable* is printed, iterated, measured,
    compared or searched.  Testing it (``if builtin_tools``, ``is defined``,
    ``default``) still works: that is how templates read optional switches.
    A missing key or attribute stays lenient, as templates test
    ``message.tool_calls`` and the like all the time."""

    __slots__ = ()
    __str__ = _strict_name(jinja2.Undefined.__str__)
    __iter__ = _strict_name(jinja2.Undefined.__iter__)
    __len__ = _strict_name(jinja2.Undefined.__len__)
    __eq__ = _strict_name(jinja2.Undefined.__eq__)
    __ne__ = _strict_name(jinja2.Undefined.__ne__)
    __hash__ = _strict_name(jinja2.Undefined.__hash__)


# -- the sandbox and its code generator ---------------------------------------


_TICK_FILTER = "etm-tick"  # a name no template can spell as a filter
_TEXT_FILTER = "etm-text"


@jinja2.pass_context
def _tick_filter(context: Any, value: Any) -> None:
    # Runs once per loop iteration: tick() inlined.
    state = _STATE.get()
    if state is not None:
        state.ticks += 1
        if not state.ticks % _CLOCK_EVERY and time.monotonic() > state.deadline:
            state.out_of_time()


@jinja2.pass_context
def _text_filter(context: Any, value: Any) -> Any:
    if type(value) is str:
        state = _STATE.get()
        if state is not None and len(value) > state.max_value:
            state.refuse_size(len(value), "operand of '~'")
    else:
        _check_text(value, "operand of '~'")
    return value


def _guarded_filter_node(node: nodes.Expr, name: str, lineno: int) -> nodes.Filter:
    # A context filter is never folded into a constant at compile time.
    return nodes.Filter(node, name, [], [], None, None, lineno=lineno)


def _add_guards(template: nodes.Template) -> None:
    """Tick the clock at the top of every loop body and check the operands of
    every ``~`` before they are joined."""
    for loop in template.find_all(nodes.For):
        first = loop.body[0] if loop.body else None
        if isinstance(first, nodes.ExprStmt) and _is_guard(first.node, _TICK_FILTER):
            continue
        tick = _guarded_filter_node(nodes.Const(None), _TICK_FILTER, loop.lineno)
        loop.body = [nodes.ExprStmt(tick, lineno=loop.lineno), *loop.body]
    for concat in template.find_all(nodes.Concat):
        concat.nodes = [
            n
            if _is_guard(n, _TEXT_FILTER)
            else _guarded_filter_node(n, _TEXT_FILTER, n.lineno)
            for n in concat.nodes
        ]


def _is_guard(node: nodes.Node, name: str) -> bool:
    return isinstance(node, nodes.Filter) and node.name == name


class _GuardedCodeGenerator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _add_guards(node)
        super().visit_Template(node, frame)


class _GuardedSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """transformers' sandbox plus guards on time and size."""

    intercepted_binops = frozenset(("*", "**", "+", "%"))
    code_generator_class = _GuardedCodeGenerator

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        # Number arithmetic only grows with * and **: the common case is quick.
        state = _STATE.get()
        if state is None or (
            type(left) in _SMALL_SCALARS and operator in _GENTLE_NUMBER_OPS
        ):
            return self.binop_table[operator](left, right)
        _precheck_binop(state, operator, left, right)
        result = self.binop_table[operator](left, right)
        state.charge(result)
        return result

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        state = _STATE.get()
        if state is not None:
            state.tick()
            args = _guard_method_call(state, obj, args)
        result = super().call(context, obj, *args, **kwargs)
        if state is not None:
            state.charge(result)
        return result

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Fail now: transformers returns an Undefined that prints as "".
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} "
            "object is unsafe."
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt: str = value.__self__
        is_map = value.__name__ == "format_map"

        def guarded(*args: Any, **kwargs: Any) -> str:
            state = _STATE.get()
            if state is not None:
                state.tick()
                mapping = (
                    args[0]
                    if is_map and args and isinstance(args[0], Mapping)
                    else kwargs
                )
                size = _format_size(
                    fmt, () if is_map else args, mapping, state.max_value
                )
                state.refuse_size(size, "str.format()")
            result = wrapper(*args, **kwargs)
            if state is not None:
                state.charge(result)
            return result

        return functools.update_wrapper(guarded, value)


def _precheck_binop(state: _RenderState, operator: str, left: Any, right: Any) -> None:
    sequences = (str, bytes, list, tuple)
    if operator == "*":
        if isinstance(left, sequences) and isinstance(right, int):
            state.refuse_size(len(left) * max(right, 0), "'*'")
        elif isinstance(right, sequences) and isinstance(left, int):
            state.refuse_size(len(right) * max(left, 0), "'*'")
        elif isinstance(left, int) and isinstance(right, int):
            _refuse_bits(state, left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            _refuse_bits(state, max(left.bit_length(), 1) * right)
    elif operator == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            state.refuse_size(len(left) + len(right), "'+'")
    elif operator == "%" and isinstance(left, str):
        state.refuse_size(_percent_size(left, right, state.max_value), "'%'")


def _refuse_bits(state: _RenderState, bits: int) -> None:
    if bits > _MAX_INT_BITS:
        state.stop(
            TemplateErrorKind.OUTPUT_LIMIT,
            f"an integer of about {bits} bits is too large for a chat template",
        )


def _make_environment(strict: bool) -> _GuardedSandbox:
    env = _GuardedSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_TokenLimit, _GenerationTag, jinja2.ext.loopcontrols],
        undefined=_StrictNameUndefined if strict else jinja2.Undefined,
        finalize=_finalize,
    )
    filters = dict(env.filters, tojson=_tojson)
    env.filters = {name: _guard_filter(name, f) for name, f in filters.items()}
    env.filters.update({_TICK_FILTER: _tick_filter, _TEXT_FILTER: _text_filter})
    env.globals.update(
        raise_exception=_raise_exception,
        strftime_now=_strftime_now,
        dict=_TemplateDict(),
        namespace=_SafeNamespace,
        lipsum=_lipsum,
    )
    return env


@functools.cache
def _environment(strict: bool) -> _GuardedSandbox:
    return _make_environment(strict)


# -- compiling ----------------------------------------------------------------


class CompiledTemplate:
    """A parsed and compiled chat template, cached by ``compile_template``."""

    def __init__(self, source: str, jinja_template: jinja2.Template, strict: bool):
        self.source = source
        self.jinja_template = jinja_template
        self.strict_undefined = strict

    @functools.cached_property
    def variables(self) -> frozenset[str]:
        """Names the template reads without setting them itself."""
        ast = _parse(self.jinja_template.environment, self.source)
        return frozenset(jinja2.meta.find_undeclared_variables(ast))


def compile_template(
    template: str, *, strict_undefined: bool = False
) -> CompiledTemplate:
    """Compile once; later calls with the same text reuse the result."""
    if not isinstance(template, str):
        raise TemplateError(
            TemplateErrorKind.INPUT,
            f"a chat template is text, not {type(template).__name__}",
        )
    if len(template) > _MAX_TEMPLATE_CHARS:
        raise TemplateError(
            TemplateErrorKind.INPUT,
            f"template is {len(template)} characters, "
            f"more than the {_MAX_TEMPLATE_CHARS} allowed",
        )
    return _compile_cached(template, strict_undefined)


@functools.lru_cache(maxsize=128)
def _compile_cached(template: str, strict: bool) -> CompiledTemplate:
    # Jinja folds constant filter calls while compiling; the guards apply.
    folding = _RenderState.for_limits(_FOLD_TIME_LIMIT_S, _FOLD_MAX_OUTPUT)
    folding.folding = True
    token = _STATE.set(folding)
    environment = _environment(strict)
    try:
        ast = _parse(environment, template)
        _refuse_large(ast)
        compiled = environment.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            TemplateErrorKind.SYNTAX, exc.message or "", line=exc.lineno
        ) from None
    except (SyntaxError, RecursionError, MemoryError) as exc:
        # Python refuses the generated code: nesting deeper than it allows.
        raise TemplateError(
            TemplateErrorKind.SYNTAX, f"template nests too deeply ({exc})"
        ) from None
    finally:
        _STATE.reset(token)
    return CompiledTemplate(template, compiled, strict)


def _parse(environment: jinja2.Environment, template: str) -> nodes.Template:
    with warnings.catch_warnings():
        # Jinja's lexer decodes string literals with Python's escapes, and
        # Python warns of an unknown one ('\\q'): the template's business, and
        # an exception under -W error.
        warnings.simplefilter("ignore", DeprecationWarning)
        return environment.parse(template)


def _refuse_large(ast: nodes.Template) -> None:
    """Raise TemplateError when the syntax tree nests past _MAX_TEMPLATE_DEPTH
    or holds more than _MAX_TEMPLATE_NODES nodes."""
    stack: list[tuple[nodes.Node, int]] = [(ast, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > _MAX_TEMPLATE_DEPTH:
            raise TemplateError(
                TemplateErrorKind.SYNTAX,
                f"template nests more than {_MAX_TEMPLATE_DEPTH} levels deep",
                line=node.lineno,
            )
        if count > _MAX_TEMPLATE_NODES:
            raise TemplateError(
                TemplateErrorKind.INPUT,
                f"template has more than {_MAX_TEMPLATE_NODES} syntax nodes",
            )
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def template_takes_tools(template: str) -> bool:
    """Whether the template reads a ``tools`` variable."""
    return "tools" in compile_template(template).variables


# -- preparing the variables as transformers does -----------------------------


def _plain(value: Any) -> Any:
    """Rebuild a value from plain JSON-like types, as transformers does for
    everything a template sees; anything else becomes a ``<TypeName>`` text."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {f.name: _plain(getattr(value, f.name)) for f in fields}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _input_error(message: str) -> TemplateError:
    return TemplateError(TemplateErrorKind.INPUT, message)


def _prepare_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise _input_error("messages must be a list of dicts")
    if not messages:
        raise _input_error("cannot render an empty conversation")
    chat: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise _input_error(
                f"a message must be a dict, not {type(message).__name__}"
            )
        # transformers drops None values: many templates print "None" otherwise.
        kept = {k: v for k, v in message.items() if v is not None}
        chat.append(_alias_reasoning(_plain(kept)))
    return chat


def _alias_reasoning(message: dict[str, Any]) -> dict[str, Any]:
    reasoning = next(
        (message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None
    )
    if reasoning is None:
        return message
    return {"thinking": reasoning, **message, "reasoning_content": reasoning}


def _prepare_list(value: Any, what: str) -> list[Any] | None:
    if value is None or value is UNSET:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _input_error(f"{what} must be a list of dicts")
    for item in value:
        if not isinstance(item, Mapping):
            raise _input_error(
                f"each of {what} must be a dict, not {type(item).__name__}"
            )
    return [_plain(item) for item in value]


def _template_variables(
    special_tokens: Mapping[str, str | None] | None, extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for name, token in (special_tokens or {}).items():
        if token is None:
            continue
        if not isinstance(token, str):
            raise _input_error(
                f"special token {name} must be text, not {type(token).__name__}"
            )
        variables[name] = token
    for name, value in (extra or {}).items():
        if name in _RESERVED_VARIABLES:
            raise _input_error(f"extra variable {name!r} is set by the renderer itself")
        variables[name] = _plain(value)
    return variables


@dataclasses.dataclass
class _Continuation:
    final_text: str


def _mark_final_message(
    template: str, chat: list[dict[str, Any]], field_arg: bool | str
) -> _Continuation:
    """Tag the text to continue, so the render can be cut right after it."""
    field = field_arg if isinstance(field_arg, str) else "content"
    last = chat[-1]
    final = last.get(field)
    if final is None:
        raise _input_error(f"the final message has no {field!r} to continue")
    fields = [field]
    if field in _REASONING_FIELDS:
        fields = [f for f in _REASONING_FIELDS if last.get(f) == final]
    if not any(f in template for f in fields):
        raise _input_error(
            f"the template never reads {field!r}, so it cannot be continued"
        )
    if isinstance(final, (list, tuple)):
        for block in reversed(final):
            if isinstance(block, dict) and "text" in block:
                text = block["text"]
                block["text"] = text + _CONTINUE_TAG
                return _Continuation(text)
        raise _input_error("the final message has no text block to continue")
    for f in fields:
        last[f] = last[f] + _CONTINUE_TAG
    return _Continuation(final)


def _cut_at_continuation(rendered: str, continuation: _Continuation) -> str:
    tag = _CONTINUE_TAG.strip()
    if continuation.final_text.strip() not in rendered or tag not in rendered:
        raise _input_error(
            "the template drops part of the final message, so it cannot be continued"
        )
    at = rendered.rindex(tag)
    if rendered[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
        return rendered[:at]
    return rendered[:at].rstrip()


# -- rendering ----------------------------------------------------------------


def render(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    tools: Sequence[Mapping[str, Any]] | _Unset | None = None,
    documents: Sequence[Mapping[str, Any]] | _Unset | None = None,
    special_tokens: Mapping[str, str | None] | None = None,
    extra: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    time_limit_s: float = 2.0,
    max_output_chars: int = 1_000_000,
    strict_undefined: bool = False,
) -> str:
    """Render a conversation as ``apply_chat_template(..., tokenize=False)``.

    ``special_tokens`` are the template variables ``bos_token``,
    ``eos_token`` and so on (None values are left undefined, as transformers
    leaves unset tokens); ``extra`` adds more variables (``enable_thinking``,
    ``date_string``...); ``now`` is what ``strftime_now`` reads; ``UNSET``
    tools or documents stay undefined instead of None.  With
    ``strict_undefined`` an undefined variable that is used for more than a
    truth test is a TemplateError naming it.  Raises
    TemplateError, never anything else for a bad template or input.
    """
    compiled = compile_template(template, strict_undefined=strict_undefined)
    if continue_final_message and add_generation_prompt:
        raise _input_error(
            "continue_final_message and add_generation_prompt cannot both be set"
        )
    try:
        chat = _prepare_messages(messages)
        variables = _template_variables(special_tokens, extra)
        variables.update(messages=chat, add_generation_prompt=add_generation_prompt)
        if tools is not UNSET:
            variables["tools"] = _prepare_list(tools, "tools")
        if documents is not UNSET:
            variables["documents"] = _prepare_list(documents, "documents")
    except RecursionError:
        raise _input_error("the input nests too deeply") from None
    continuation = None
    if continue_final_message:
        continuation = _mark_final_message(template, chat, continue_final_message)
    state = _RenderState.for_limits(time_limit_s, max_output_chars, now)
    text = _run(compiled, variables, state)
    return _cut_at_continuation(text, continuation) if continuation else text


def _run(
    compiled: CompiledTemplate, variables: dict[str, Any], state: _RenderState
) -> str:
    token = _STATE.set(state)
    pieces = compiled.jinja_template.generate(variables)
    assert isinstance(pieces, Generator)
    try:
        return _collect(pieces, state)
    except _LimitReached as exc:
        line = _template_line(exc.__traceback__)
        raise TemplateError(exc.kind, exc.detail, line=line) from None
    except Exception as exc:  # a template may fail in any way Python can
        raise _classify(exc) from None
    finally:
        pieces.close()
        _STATE.reset(token)


def _collect(pieces: Iterator[str], state: _RenderState) -> str:
    # Output only grows without bound inside loops, which tick themselves.
    out: list[str] = []
    size = 0
    limit = state.max_output
    for piece in pieces:
        size += len(piece)
        if size > limit:
            raise _LimitReached(
                TemplateErrorKind.OUTPUT_LIMIT,
                f"the prompt grew past {limit} characters",
            )
        out.append(piece)
    return "".join(out)


def _template_line(tb: TracebackType | None) -> int | None:
    """The template line of the innermost template frame in a traceback."""
    line = None
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_globals.get("__jinja_template__")
        if isinstance(owner, jinja2.Template):
            line = owner.get_corresponding_lineno(tb.tb_lineno)
        elif frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _classify(exc: Exception) -> TemplateError:
    line = _template_line(exc.__traceback__)
    kind, detail, variable = TemplateErrorKind.RUNTIME, str(exc), None
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, _TemplateRaised):
        kind, detail = TemplateErrorKind.RAISED, exc.message or ""
    elif isinstance(exc, _UndefinedName):
        kind, variable = TemplateErrorKind.UNDEFINED, exc.name
    elif isinstance(exc, UndefinedError):
        kind = TemplateErrorKind.UNDEFINED
    elif isinstance(exc, SecurityError):
        kind = TemplateErrorKind.SANDBOX
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        kind, line = TemplateErrorKind.SYNTAX, exc.lineno
    elif isinstance(exc, RecursionError):
        detail = "recursion too deep (a macro or loop that calls itself without end?)"
    elif isinstance(exc, MemoryError):
        kind, detail = TemplateErrorKind.OUTPUT_LIMIT, "out of memory"
    elif not isinstance(exc, jinja2.TemplateError):
        detail = f"{type(exc).__name__}: {exc}"
    if kind is TemplateErrorKind.UNDEFINED and variable is None:
        detail = str(exc)
    return TemplateError(kind, detail, line=line, variable=variable)


# -- choosing a template ------------------------------------------------------


def select_template(
    chat_template: str | Mapping[str, str] | Sequence[Mapping[str, str]],
    name: str | None = None,
    has_tools: bool = False,
) -> str:
    """Pick the template text as transformers does: a named one when asked,
    else ``tool_use`` when tools are passed and it exists, else ``default``.

    Unlike transformers, an unknown name is an error rather than being taken
    as template text.
    """
    if isinstance(chat_template, str):
        if name not in (None, "default"):
            raise _input_error(
                f"no template named {name!r}: there is only one template"
            )
        return chat_template
    named = _named_templates(chat_template)
    if name is not None:
        if name in named:
            return named[name]
        raise _input_error(
            f"no template named {name!r} (have {', '.join(sorted(named))})"
        )
    if has_tools and "tool_use" in named:
        return named["tool_use"]
    if "default" in named:
        return named["default"]
    raise _input_error(
        f"several templates and none named 'default' (have {', '.join(sorted(named))})"
    )


def _named_templates(chat_template: object) -> dict[str, str]:
    if isinstance(chat_template, Mapping):
        pairs = list(chat_template.items())
    elif isinstance(chat_template, Sequence) and not isinstance(chat_template, bytes):
        pairs = []
        for item in chat_template:
            if not isinstance(item, Mapping):
                raise _input_error(
                    "a list of chat templates holds {name, template} dicts"
                )
            pairs.append((item.get("name"), item.get("template")))
    else:
        raise _input_error(f"a chat template cannot be {type(chat_template).__name__}")
    named: dict[str, str] = {}
    for key, text in pairs:
        if not isinstance(key, str) or not isinstance(text, str):
            raise _input_error(
                "each named chat template needs a text name and template"
            )
        named[key] = text
    if not named:
        raise _input_error("the list of chat templates is empty")
    return named


def special_tokens_from_config(config: Mapping[str, Any]) -> dict[str, str]:
    """The named special tokens of a ``tokenizer_config.json``, as text.

    Legacy ``{"__type": "AddedToken", "content": ...}`` objects give their
    content; unset tokens are left out, as transformers leaves them out.
    """
    tokens: dict[str, str] = {}
    for name in HF_SPECIAL_TOKEN_NAMES:
        value = config.get(name)
        if isinstance(value, Mapping):
            value = value.get("content")
        if isinstance(value, str):
            tokens[name] = value
    return tokens


# -- the conversations a linter renders ---------------------------------------

_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current temperature in a city, in °C.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name."}},
            "required": ["city"],
        },
    },
}
_TOOL_CALL_ID = "call0001a"  # nine letters and digits, as Mistral's templates demand
_TOOL_TURNS: list[dict[str, Any]] = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {
        "role": "assistant",
        # Many real templates read ``content`` unconditionally; an empty
        # text is what OpenAI-style clients send beside tool calls.
        "content": "",
        "tool_calls": [
            {
                "id": _TOOL_CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": _TOOL_CALL_ID,
        "name": "get_weather",
        "content": '{"temperature_c": 21}',
    },
]
_SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
_USER = {"role": "user", "content": "Hello! Who are you?"}
_ASSISTANT = {"role": "assistant", "content": "I am an assistant. How can I help?"}
_USER_AGAIN = {"role": "user", "content": "Tell me a joke."}


@dataclasses.dataclass(frozen=True)
class ProbeCase:
    """One conversation a linter renders; ``messages`` and ``tools`` are
    fresh copies on every access."""

    name: str
    add_generation_prompt: bool
    needs_tools: bool
    messages_json: str
    tools_json: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = json.loads(self.messages_json)
        return loaded

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return None if self.tools_json is None else json.loads(self.tools_json)


def _cases(
    name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> tuple[ProbeCase, ProbeCase]:
    text = json.dumps(messages, ensure_ascii=False)
    tools_text = None if tools is None else json.dumps(tools, ensure_ascii=False)
    return (
        ProbeCase(name, False, tools is not None, text, tools_text),
        ProbeCase(f"{name}+gen", True, tools is not None, text, tools_text),
    )


STANDARD_CONVERSATIONS: tuple[ProbeCase, ...] = (
    *_cases("user", [_USER]),
    *_cases("system-user", [_SYSTEM, _USER]),
    *_cases("multi-turn", [_USER, _ASSISTANT, _USER_AGAIN]),
    *_cases("tool-call", _TOOL_TURNS, [_WEATHER_TOOL]),
)


def probe_cases(template: str) -> tuple[ProbeCase, ...]:
    """The standard conversations that apply to a template: the tool-call
    ones only when it reads ``tools``."""
    takes_tools = template_takes_tools(template)
    return tuple(c for c in STANDARD_CONVERSATIONS if takes_tools or not c.needs_tools)


# -- the end-of-turn marker ---------------------------------------------------

# Text that looks like a special token: anything in angle brackets without
# spaces, as <|eot_id|>, <end_of_turn>, </s>, <turn|>, <seed:eos> and
# DeepSeek's <｜end▁of▁sentence｜>.
_MARKER_RE = re.compile(r"<[^<>\s]{1,64}>")


def marker_candidates(text: str) -> list[str]:
    """The distinct strings in ``text`` shaped like special tokens, in order."""
    return list(dict.fromkeys(m.group() for m in _MARKER_RE.finditer(text)))


def end_of_turn_marker(
    template: str,
    special_tokens: Mapping[str, str | None] | None = None,
    known_markers: Iterable[str] = (),
) -> str | None:
    """What the template writes right after an assistant turn, up to and
    including the first marker, or None when no marker follows.

    Renders [user "PING", assistant "PONG"] without a generation prompt.
    Any text before the marker stays in (Llama 2 writes " </s>"), so the
    caller sees exactly what the model must produce to end its turn.  The
    strings in ``known_markers`` (a tokenizer's added and special tokens) and
    the special tokens are matched exactly; other marker-looking text is
    found by shape.  Raises TemplateError when the template fails to render.
    """
    probe = [
        {"role": "user", "content": "PING"},
        {"role": "assistant", "content": "PONG"},
    ]
    text = render(template, probe, special_tokens=special_tokens)
    at = text.rfind("PONG")
    if at < 0:
        return None
    tail = text[at + len("PONG") :]
    exact = {m for m in known_markers if m}
    exact.update(v for v in (special_tokens or {}).values() if v)
    found = [(tail.find(m), -len(m)) for m in exact if m in tail]
    shaped = _MARKER_RE.search(tail)
    if shaped is not None:
        found.append((shaped.start(), -len(shaped.group())))
    if not found:
        return None
    start, negative_length = min(found)
    return tail[: start - negative_length]
