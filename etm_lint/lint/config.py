"""``[tool.etm-lint]`` in pyproject.toml, found by searching upward."""

from __future__ import annotations

import contextlib
import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etm_lint.errors import EtmError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KNOWN_KEYS = {
    "select",
    "ignore",
    "extend-select",
    "fail-on",
    "verify-hashes",
    "per-bundle-ignores",
}
LEVELS = ("error", "warning", "info")


@dataclass
class Config:
    source: Path | None = None
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    fail_on: str | None = None
    verify_hashes: bool | None = None
    per_bundle_ignores: dict[str, list[str]] = field(default_factory=dict)

    def ignores_for(self, path: str) -> list[str]:
        """Codes ignored for one bundle: glob patterns matched on its path
        relative to the folder of the configuration file (as given, and by
        its file name, too)."""
        names = {path, Path(path).name}
        if self.source is not None:
            with contextlib.suppress(ValueError, OSError):
                absolute = Path(path).resolve()
                names.add(absolute.relative_to(self.source.resolve().parent).as_posix())
        found = []
        for pattern, codes in self.per_bundle_ignores.items():
            if any(fnmatch.fnmatch(name, pattern) for name in names):
                found.extend(codes)
        return found


def find_pyproject(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load(path: Path | None) -> Config:
    """Read ``[tool.etm-lint]`` from ``path``; an absent table is no config."""
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise EtmError(f"{path}: cannot read configuration ({err})") from None
    table = document.get("tool", {}).get("etm-lint")
    if table is None:
        return Config(source=None)
    if not isinstance(table, dict):
        raise EtmError(f"{path}: [tool.etm-lint] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        known = ", ".join(sorted(KNOWN_KEYS))
        raise EtmError(
            f"{path}: unknown key {unknown[0]!r} in [tool.etm-lint] (known: {known})"
        )
    config = Config(source=path)
    config.select = _codes(path, table, "select")
    config.ignore = _codes(path, table, "ignore")
    config.extend_select = _codes(path, table, "extend-select")
    if "fail-on" in table:
        if table["fail-on"] not in LEVELS:
            raise EtmError(f"{path}: fail-on must be one of {', '.join(LEVELS)}")
        config.fail_on = table["fail-on"]
    if "verify-hashes" in table:
        if not isinstance(table["verify-hashes"], bool):
            raise EtmError(f"{path}: verify-hashes must be true or false")
        config.verify_hashes = table["verify-hashes"]
    per_bundle = table.get("per-bundle-ignores", {})
    if not isinstance(per_bundle, dict):
        raise EtmError(f"{path}: per-bundle-ignores must be a table")
    config.per_bundle_ignores = {
        str(pattern): _codes(path, per_bundle, pattern) for pattern in per_bundle
    }
    return config


def _codes(path: Path, table: dict[str, Any], key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EtmError(f"{path}: {key} must be a list of rule codes or prefixes")
    return [v.upper() for v in value]
