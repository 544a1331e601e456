"""Formatters: pure functions from findings to report text."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from xml.etree import ElementTree

from etm_lint import __version__
from etm_lint.lint.model import Finding, Rule, Severity

COLOURS = {Severity.ERROR: "31", Severity.WARNING: "33", Severity.INFO: "36"}
SARIF_LEVELS = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "note",
}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES_URL = "https://github.com/etm-lint/etm-lint/blob/main/docs/rules.md"


def _where(finding: Finding) -> str:
    where = finding.path
    if finding.member:
        where += f":{finding.member}"
    if finding.location:
        where += f":{finding.location}"
    return where


def text(findings: Sequence[Finding], rules: dict[str, Rule], colour: bool) -> str:
    def paint(code: str, value: str) -> str:
        return f"\x1b[{code}m{value}\x1b[0m" if colour else value

    lines = []
    for f in findings:
        label = paint(COLOURS[f.severity], f.severity.value)
        lines.append(
            f"{_where(f)}: {paint('1', f.code)} [{label}] {f.message} ({f.name})"
        )
    counts = Counter(f.severity for f in findings)
    if findings:
        parts = [f"{counts[s]} {s.value}" for s in Severity if counts[s]]
        lines.append(f"Found {len(findings)} finding(s): " + ", ".join(parts) + ".")
    else:
        lines.append("All checks passed.")
    return "\n".join(lines) + "\n"


def as_json(findings: Sequence[Finding], rules: dict[str, Rule], colour: bool) -> str:
    return json.dumps([f.as_dict() for f in findings], indent=2) + "\n"


def github(findings: Sequence[Finding], rules: dict[str, Rule], colour: bool) -> str:
    levels = {Severity.ERROR: "error", Severity.WARNING: "warning"}
    lines = []
    for f in findings:
        level = levels.get(f.severity, "notice")
        title = _escape_property(f"{f.code} {f.name}")
        message = _escape_data(f"{f.message} ({_where(f)})")
        lines.append(
            f"::{level} file={_escape_property(f.path)},title={title}::{message}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def sarif(findings: Sequence[Finding], rules: dict[str, Rule], colour: bool) -> str:
    codes = sorted(rules)
    index = {code: i for i, code in enumerate(codes)}
    descriptors = [
        {
            "id": code,
            "name": rules[code].name,
            "shortDescription": {"text": rules[code].summary},
            "fullDescription": {"text": rules[code].explanation.split("\n\n")[0]},
            "help": {"text": rules[code].explanation},
            "helpUri": f"{RULES_URL}#{code.lower()}",
            "defaultConfiguration": {"level": SARIF_LEVELS[rules[code].severity]},
            "properties": {"family": rules[code].family},
        }
        for code in codes
    ]
    results = []
    for f in findings:
        result: dict[str, object] = {
            "ruleId": f.code,
            "level": SARIF_LEVELS[f.severity],
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": _uri(f.path)}},
                    "logicalLocations": [
                        {"fullyQualifiedName": _where(f), "kind": "member"}
                    ],
                }
            ],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        results.append(result)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "etm-lint",
                        "version": __version__,
                        "informationUri": RULES_URL,
                        "rules": descriptors,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


# Characters XML 1.0 cannot hold, not even as references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """``text`` with what XML 1.0 forbids written as Python escapes."""
    return _NOT_XML.sub(lambda m: ascii(m.group())[1:-1], text)


def _uri(path: str) -> str:
    """A relative URI reference for a path: spaces, ``#``, ``%`` and bytes
    that are not UTF-8 percent-encoded, slashes kept."""
    return urllib.parse.quote(os.fsencode(path), safe="/")


def junit(findings: Sequence[Finding], rules: dict[str, Rule], colour: bool) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name="etm-lint",
        tests=str(max(len(findings), 1)),
        failures=str(sum(f.severity is Severity.ERROR for f in findings)),
    )
    if not findings:
        ElementTree.SubElement(suite, "testcase", name="all checks", classname="etm")
    for f in findings:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            name=_xml_text(f"{f.code} {_where(f)}"),
            classname=_xml_text(f.path),
        )
        tag = "failure" if f.severity is Severity.ERROR else "system-out"
        element = ElementTree.SubElement(case, tag)
        if tag == "failure":
            element.set("message", _xml_text(f.message))
            element.set("type", f.code)
        element.text = _xml_text(f"{f.code} [{f.severity.value}] {f.message}")
    suites = ElementTree.Element("testsuites")
    suites.append(suite)
    return ElementTree.tostring(suites, encoding="unicode") + "\n"


def statistics(findings: Sequence[Finding]) -> str:
    counts = Counter((f.code, f.name, f.severity.value) for f in findings)
    rows = [
        f"{count:>5}  {code}  {name} [{severity}]"
        for (code, name, severity), count in sorted(counts.items())
    ]
    return "\n".join(rows) + ("\n" if rows else "")


Formatter = Callable[[Sequence[Finding], dict[str, Rule], bool], str]
FORMATS: dict[str, Formatter] = {
    "text": text,
    "json": as_json,
    "sarif": sarif,
    "github": github,
    "junit": junit,
}
