"""metadata.json: parsing, schema validation and typed access.

The JSON Schema shipped beside this module is the one source of truth for
what a valid file holds; this module adds only what a schema cannot say (the
major version a reader knows) and hostile-input limits.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

FORMAT_VERSION = "1.0"
KNOWN_MAJOR = 1
KINDS = ("llm",)
METADATA_NAME = "metadata.json"
MAX_METADATA_BYTES = 4 * 1024 * 1024
MAX_JSON_DEPTH = 32


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


def parse(data: bytes) -> Any:
    """Decode metadata bytes as JSON, or raise ValueError with a short reason."""
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
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not JSON: {err.msg} (line {err.lineno})") from None
    except ValueError as err:  # huge integers, NaN
        raise ValueError(f"is not JSON: {err}") from None


def validate(document: Any) -> list[SchemaProblem]:
    """Every schema violation, most specific first, and version/kind checks."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = [
        SchemaProblem(_pointer(error.absolute_path), error.message)
        for error in sorted(validator.iter_errors(document), key=_error_order)
    ]
    return problems


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


def _pointer(path: Any) -> str:
    return "".join(f"/{part}" for part in path)


def _error_order(error: Any) -> tuple[int, str]:
    return (-len(error.absolute_path), error.message)
