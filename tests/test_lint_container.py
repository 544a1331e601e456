"""Each broken container gets its own finding; the good bundle gets none."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from etm_lint.cli.lint import main
from tests.conftest import EXAMPLES, FIXTURES

sys.path.insert(0, str(FIXTURES))
from container_cases import CASES, write_case

GOOD = EXAMPLES / "stories260K.etm"


def lint_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict]]:
    code = main(["--no-config", "--select", "ETM1", "--output-format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_good_bundle_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = lint_json(capsys, "--verify-hashes", str(GOOD))
    assert (code, findings) == (0, [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_broken_container_gets_its_finding(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"{case}.etm"
    expected = write_case(case, GOOD, out)
    before = out.read_bytes()
    code, findings = lint_json(capsys, str(out))
    codes = {f["code"] for f in findings}
    assert expected in codes
    # The only other finding a case may bring is an unreferenced member it
    # had to add to carry its fault.
    assert codes - {expected} <= {"ETM107"}
    assert code == (1 if any(f["severity"] == "error" for f in findings) else 0)
    for finding in findings:
        assert finding["path"] == str(out)
        assert set(finding) >= {"code", "severity", "message", "path", "member"}
    assert out.read_bytes() == before  # the input is never modified


@pytest.mark.parametrize(
    "case",
    ["misaligned", "program_deflated", "hash_mismatch", "metadata_not_first"],
)
def test_fix_writes_a_clean_copy_and_leaves_the_input(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.etm"
    write_case(case, GOOD, broken)
    before = broken.read_bytes()
    fixed = tmp_path / "fixed.etm"
    main(["--no-config", "--fix", "--fixed-copy", str(fixed), str(broken)])
    said = capsys.readouterr().err
    # Recording a changed member's hash is the fix that needs a person's eye.
    assert ("WARNING: recorded the real size and sha256" in said) == (
        case in ("size_mismatch", "hash_mismatch")
    )
    assert broken.read_bytes() == before
    code, findings = lint_json(capsys, "--verify-hashes", str(fixed))
    assert (code, findings) == (0, [])


def test_select_and_ignore_by_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.etm"
    write_case("unsafe_name", GOOD, out)
    _, findings = lint_json(capsys, "--select", "ETM112", str(out))
    assert {f["code"] for f in findings} == {"ETM112"}
    _, findings = lint_json(capsys, "--ignore", "ETM11", str(out))
    assert {f["code"] for f in findings} == {"ETM107"}


def test_pyproject_configuration_takes_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "b.etm"
    write_case("unreferenced", GOOD, out)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.etm-lint]\nselect = ["ETM1"]\nignore = ["ETM107"]\nfail-on = "warning"\n'
    )
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # found by searching upward
    assert main(["--output-format", "json", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_per_bundle_ignores_match_relative_to_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "models"
    sub.mkdir()
    out = sub / "b.etm"
    write_case("unreferenced", GOOD, out)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.etm-lint]\nselect = ["ETM1"]\n'
        '[tool.etm-lint.per-bundle-ignores]\n"models/*.etm" = ["ETM107"]\n'
    )
    # The same bundle named three ways: from the project, from its own
    # folder, and by absolute path.
    for cwd, given in ((tmp_path, "models/b.etm"), (sub, "b.etm"), (sub, str(out))):
        monkeypatch.chdir(cwd)
        assert main(["--output-format", "json", given]) == 0
        assert json.loads(capsys.readouterr().out) == []
    monkeypatch.chdir(tmp_path)
    main(["--output-format", "json", "--no-config", "models/b.etm"])
    assert "ETM107" in {f["code"] for f in json.loads(capsys.readouterr().out)}


def test_unknown_configuration_key_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.etm-lint]\nselekt = ["ETM1"]\n')
    monkeypatch.chdir(tmp_path)
    assert main([str(GOOD)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'selekt'" in err and "pyproject.toml" in err


def test_unknown_code_in_select_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-config", "--select", "ETM999", str(GOOD)]) == 2
    assert "ETM999" in capsys.readouterr().err


def test_missing_path_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--no-config", "no/such.etm"]) == 2
    assert capsys.readouterr().err.startswith("etm-lint: no/such.etm")
