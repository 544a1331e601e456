"""Findings, severities and the rule registry.

A rule is one small unit: a check function whose docstring is its manual,
registered with its code, name and default severity. Rules yield ``Issue``
values; the engine, not the rule, turns them into ``Finding`` values stamped
with the rule's code and severity.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from etm_lint.lint.target import Target


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Issue:
    """What a check found, before the engine stamps code and severity."""

    message: str
    member: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    member: str | None = None
    location: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "member": self.member,
            "location": self.location,
        }


Check = Callable[["Target"], Iterable[Issue]]

FAMILIES = {
    "ETM1": "container",
    "ETM2": "program",
    "ETM3": "tokenizer",
    "ETM4": "bos-eos",
    "ETM5": "template",
    "ETM6": "generation",
}


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    check: Check = field(repr=False)
    explanation: str = ""
    fixable: bool = False

    @property
    def family(self) -> str:
        return FAMILIES[self.code[:4]]

    def run(self, target: Target) -> Iterator[Finding]:
        for issue in self.check(target):
            yield Finding(
                code=self.code,
                name=self.name,
                severity=self.severity,
                message=issue.message,
                path=target.path,
                member=issue.member,
                location=issue.location,
            )


RULES: dict[str, Rule] = {}


def _origin(check: Check) -> str:
    return f"{check.__module__}.{check.__qualname__}"


def rule(
    code: str, name: str, severity: Severity, summary: str, *, fixable: bool = False
) -> Callable[[Check], Check]:
    """Register a check under ``code``; its docstring is the rule's manual."""

    def register(check: Check) -> Check:
        known = RULES.get(code)
        # A module imported anew (pytester drops and re-imports modules)
        # registers the same function again; another function is a clash.
        if known is not None and _origin(known.check) != _origin(check):
            raise RuntimeError(f"rule code {code} registered twice")
        if code[:4] not in FAMILIES or not code[4:].isdigit() or len(code) != 6:
            raise RuntimeError(f"rule code {code} is not ETM<family><nn>")
        RULES[code] = Rule(
            code=code,
            name=name,
            severity=severity,
            summary=summary,
            check=check,
            explanation=_dedent(check.__doc__ or ""),
            fixable=fixable,
        )
        return check

    return register


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)
