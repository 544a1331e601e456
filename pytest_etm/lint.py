"""etm-lint findings as test items (``--etm-lint``): one per bundle and family.

So one pytest run gates both the golden outputs and the linter. The items
read ``[tool.etm-lint]`` from the pyproject.toml nearest the rootdir, as
``etm-lint`` does from the working directory (select, ignore, fail-on,
verify-hashes, per-bundle-ignores), and fail on findings at or above the
fail-on level. Nothing here imports torch or executorch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etm_lint.errors import EtmError
from etm_lint.lint import config as lint_config
from etm_lint.lint.engine import Selection, load_rules
from etm_lint.lint.model import FAMILIES, Finding, Severity
from etm_lint.lint.target import LintOptions, Target


class LintFailure(Exception):
    """Findings at or above the fail-on level, one line each."""


TARGETS = pytest.StashKey[dict[str, Target]]()
CONFIG = pytest.StashKey[lint_config.Config]()


def lint_items(
    session: pytest.Session, bundles: list[tuple[Path, str]]
) -> Iterator[Any]:
    for path, label in bundles:
        for prefix, family in FAMILIES.items():
            yield LintItem.from_parent(
                session,
                name=f"etm-lint-{family}[{label}]",
                bundle=path,
                prefix=prefix,
                family=family,
            )


def settings(config: pytest.Config) -> lint_config.Config:
    if CONFIG not in config.stash:
        found = lint_config.find_pyproject(config.rootpath)
        config.stash[CONFIG] = lint_config.load(found)
    return config.stash[CONFIG]


def _target(config: pytest.Config, path: Path, verify: bool) -> Target:
    opened = config.stash.setdefault(TARGETS, {})
    key = str(path)
    if key not in opened:
        opened[key] = Target(key, LintOptions(verify_hashes=verify))
    return opened[key]


def close_targets(config: pytest.Config) -> None:
    for target in config.stash.get(TARGETS, {}).values():
        target.close()
    config.stash[TARGETS] = {}


class LintItem(pytest.Item):
    def __init__(self, *, bundle: Path, prefix: str, family: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.bundle, self.prefix, self.family = bundle, prefix, family

    def runtest(self) -> None:
        conf = settings(self.config)
        if not self.bundle.exists():
            raise EtmError(f"{self.bundle}: no such file or folder")
        selection = Selection(
            select=tuple(conf.select),
            ignore=tuple(conf.ignore + conf.ignores_for(str(self.bundle))),
            extend_select=tuple(conf.extend_select),
        )
        rules = [
            rule
            for code, rule in sorted(load_rules().items())
            if code.startswith(self.prefix) and selection.chooses(code)
        ]
        target = _target(self.config, self.bundle, bool(conf.verify_hashes))
        findings = [f for rule in rules for f in rule.run(target)]
        fail_on = Severity(conf.fail_on or "error")
        failing = [f for f in findings if f.severity.rank >= fail_on.rank]
        if failing:
            raise LintFailure(_failure_text(failing, fail_on))

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str:
        if isinstance(excinfo.value, (LintFailure, EtmError)):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.bundle, None, f"etm-lint {self.family} checks: {self.name}"


def _failure_text(findings: list[Finding], fail_on: Severity) -> str:
    lines = [_line(f) for f in findings]
    lines.append(
        f"({len(findings)} finding(s) at or above {fail_on.value}; "
        "`etm-lint --explain CODE` tells how to fix each)"
    )
    return "\n".join(lines)


def _line(finding: Finding) -> str:
    where = f" {finding.member}" if finding.member else ""
    if finding.location:
        where += f" ({finding.location})"
    return f"{finding.code} {finding.severity.value}{where}: {finding.message}"
