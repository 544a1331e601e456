"""Running the selected rules over targets and collecting findings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from etm_lint.lint.model import RULES, Finding, Rule
from etm_lint.lint.target import LintOptions, Target


def load_rules() -> dict[str, Rule]:
    """Import every family so its rules register, then return the registry."""
    from etm_lint.lint.rules import load_all

    load_all()
    return RULES


@dataclass(frozen=True)
class Selection:
    """Rule codes or prefixes to run: ``select`` (or all), minus ``ignore``."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()

    def chooses(self, code: str) -> bool:
        chosen = self.select or ("ETM",)
        picked = _matches(code, chosen + self.extend_select)
        return picked and not _matches(code, self.ignore)


def _matches(code: str, prefixes: Iterable[str]) -> bool:
    return any(code.startswith(prefix.upper()) for prefix in prefixes)


def unknown_codes(prefixes: Iterable[str], rules: dict[str, Rule]) -> list[str]:
    """Selectors that match no rule (a typo should not silence a gate)."""
    return [p for p in prefixes if not any(c.startswith(p.upper()) for c in rules)]


def lint_target(target: Target, rules: Sequence[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        findings.extend(rule.run(target))
    return findings


def lint_paths(
    paths: Sequence[str], selection: Selection, options: LintOptions
) -> list[Finding]:
    rules = [r for code, r in sorted(load_rules().items()) if selection.chooses(code)]
    findings: list[Finding] = []
    for path in paths:
        target = Target(path, options)
        try:
            findings.extend(lint_target(target, rules))
        finally:
            target.close()
    return findings
