"""Report formats: SARIF valid against the 2.1.0 schema, annotations, JUnit."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree

import jsonschema
import pytest

from etm_lint.cli.lint import main
from tests.conftest import EXAMPLES, FIXTURES, REAL

sys.path.insert(0, str(FIXTURES))
from container_cases import write_case

SARIF_SCHEMA = REAL.parent / "schemas" / "sarif-schema-2.1.0.json"


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    out = tmp_path / "broken.etm"
    write_case("unsafe_name", EXAMPLES / "stories260K.etm", out)
    return out


def report(capsys: pytest.CaptureFixture[str], fmt: str, path: Path) -> str:
    main(["--no-config", "--select", "ETM1", "--output-format", fmt, str(path)])
    return capsys.readouterr().out


def test_sarif_validates_against_the_schema(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not SARIF_SCHEMA.is_file():
        pytest.skip("../shared/schemas is not beside this checkout")
    schema = json.loads(SARIF_SCHEMA.read_text())
    log = json.loads(report(capsys, "sarif", broken))
    jsonschema.validate(log, schema)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert {r["ruleId"] for r in run["results"]} == {"ETM107", "ETM112"}
    for result in run["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] == "error" or result["ruleId"] == "ETM107"


def test_sarif_locations_are_uri_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A space or a `#` in a bundle's name gave a location that is no URI."""
    odd = tmp_path / "my model#1.etm"
    write_case("unsafe_name", EXAMPLES / "stories260K.etm", odd)
    log = json.loads(report(capsys, "sarif", odd))
    uris = {
        location["physicalLocation"]["artifactLocation"]["uri"]
        for result in log["runs"][0]["results"]
        for location in result["locations"]
    }
    assert uris == {str(odd).replace(" ", "%20").replace("#", "%23")}
    checker = jsonschema.FormatChecker()
    assert all(checker.conforms(uri, "uri-reference") for uri in uris)


def test_github_annotations(broken: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = report(capsys, "github", broken).splitlines()
    assert any(line.startswith("::error file=") and "ETM112" in line for line in lines)
    assert any(line.startswith("::warning file=") for line in lines)


def test_junit_is_xml_with_a_failure_per_error(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = ElementTree.fromstring(report(capsys, "junit", broken))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failures = root.findall(".//failure")
    assert [f.get("type") for f in failures] == ["ETM112"]


def test_text_has_no_colour_when_piped_or_no_color(
    broken: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in report(capsys, "text", broken)
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in report(capsys, "text", broken)


def test_report_to_file_and_statistics(
    broken: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    args = ["--no-config", "--select", "ETM1", "--output-format", "json"]
    code = main([*args, "-o", str(out), str(broken)])
    assert code == 1 and capsys.readouterr().out == ""
    assert {f["code"] for f in json.loads(out.read_text())} == {"ETM107", "ETM112"}
    main(["--no-config", "--select", "ETM1", "--statistics", str(broken)])
    stats = capsys.readouterr().out
    assert "ETM112" in stats and "unsafe-member-name" in stats


def test_exit_zero_and_fail_on(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--no-config", "--select", "ETM1", "--exit-zero", str(broken)]) == 0
    args = ["--no-config", "--select", "ETM107"]
    assert main([*args, str(broken)]) == 0  # a warning does not fail by default
    assert main([*args, "--fail-on", "warning", str(broken)]) == 1
    capsys.readouterr()


def test_explain_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    from etm_lint.lint.engine import load_rules

    for code, rule in load_rules().items():
        assert main(["--explain", code]) == 0
        text = capsys.readouterr().out
        assert text.startswith(f"{code} {rule.name}")
        for section in ("Why:", "Fix:", "Passing"):
            assert section in text, (code, section)
        # An info rule reports a case rather than failing it.
        assert ("Failing" in text) != ("Reported" in text), code
