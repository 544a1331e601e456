"""metadata.json: parsing, schema validation and typed access.

The JSON Schema shipped beside this module is the one source of truth for
what a valid file holds; this module adds only what a schema cannot say (the
major version a reader knows) and hostile-input limits.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

FORMAT_VERSION = "1.0"
KNOWN_MAJOR = 1
KINDS = ("llm",)
METADATA_NAME = "metadata.json"
MAX_METADATA_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32
# Runtimes read sizes and counts as 64-bit integers; a larger number is
# either an attack or a value that a C++ reader silently wraps.
MAX_JSON_INTEGER = (1 << 63) - 1


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schema/metadata-v1.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class SchemaProblem:
    """One schema violation: where in the document, and what."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}" if self.pointer else self.message


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Readers differ on a repeated key (first wins, last wins): refuse it, so
    # that no two tools see two different bundles in one file.
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"repeats the key {key!r}")
            seen.add(key)
    return document


def parse(data: bytes) -> dict[str, Any]:
    """Decode metadata bytes as a JSON object, or raise ValueError with a short
    reason. Beyond JSON, it refuses what no reader should have to hold: more
    than MAX_METADATA_BYTES, nesting deeper than MAX_JSON_DEPTH, numbers
    that do not fit 64 bits, repeated keys, and lone UTF-16 surrogates."""
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(
            f"is {len(data)} bytes, more than the {MAX_METADATA_BYTES} allowed"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"is not UTF-8 (byte {err.start})") from None
    if _nesting(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as err:
        raise ValueError(f"is not JSON: {err.msg} (line {err.lineno})") from None
    except _Refused as err:
        raise ValueError(str(err)) from None
    except ValueError as err:  # NaN, Infinity
        raise ValueError(f"is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise ValueError(f"is a JSON {_json_type(document)}, not an object")
    _refuse_lone_surrogates(document)
    return document


def validate(document: Any) -> list[SchemaProblem]:
    """Every schema violation, most specific first, and version/kind checks."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=_error_order)
    if _later_minor(document):
        # A 1.x reader reads any later 1.y: fields it does not know are
        # additions, not mistakes.
        errors = [e for e in errors if e.validator != "additionalProperties"]
    return [SchemaProblem(_pointer(e.absolute_path), e.message) for e in errors]


def _later_minor(document: Any) -> bool:
    try:
        major, minor = str(document["format_version"]).split(".")
        return int(major) == KNOWN_MAJOR and int(minor) > int(
            FORMAT_VERSION.split(".")[1]
        )
    except (KeyError, TypeError, ValueError):
        return False


def major_version(document: Any) -> int | None:
    try:
        return int(str(document["format_version"]).split(".")[0])
    except (KeyError, TypeError, ValueError):
        return None


def dumps(document: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, UTF-8, final newline."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def _nesting(text: str) -> int:
    # Bound the depth before json.loads recurses; strings may hold brackets,
    # so skip their contents.
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class _Refused(ValueError):
    """Valid JSON that no reader should have to hold: a number past 64 bits,
    a repeated key."""


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Refused(f"holds {_clip(literal)}, too large for a 64-bit float")
    return value


def _bounded_int(literal: str) -> int:
    # Check the length first: int() of thousands of digits is slow, and past
    # 4300 digits Python refuses it with a message about its own settings.
    if len(literal.lstrip("-")) > 19 or abs(int(literal)) > MAX_JSON_INTEGER:
        raise _Refused(f"holds {_clip(literal)}, which does not fit in 64 bits")
    return int(literal)


def _clip(literal: str) -> str:
    return literal if len(literal) <= 24 else f"{literal[:20]}… ({len(literal)} digits)"


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _refuse_lone_surrogates(value: Any) -> None:
    # JSON escapes can spell half of a UTF-16 pair (\ud800); Python keeps it,
    # and every later encode to UTF-8 (a report, a tokenizer) fails on it.
    # The depth is bounded by MAX_JSON_DEPTH before this runs.
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            code = ord(value[err.start])
            raise ValueError(
                f"holds a lone surrogate (\\u{code:04x}), not a Unicode character"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(key)
            _refuse_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_lone_surrogates(item)


def _pointer(path: Any) -> str:
    return "".join(f"/{part}" for part in path)


def _error_order(error: Any) -> tuple[int, str]:
    return (-len(error.absolute_path), error.message)
