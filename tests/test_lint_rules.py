"""Each program, tokenizer and BOS/EOS rule fires on its broken fixture.

The broken programs come from fixtures/build.py (a real ExecuTorch export);
fixtures/README.md records what the real runner does with each, and
tests/test_runtime_predictions.py shows it where a rule predicts a failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from etm_lint.cli.lint import main
from tests.conftest import EXAMPLES, FIXTURES

BROKEN = FIXTURES / "broken"
# What each broken bundle must bring, and the only codes it may bring
# besides: ETM408 (info) is true of the fixture tokenizer in every bundle.
EXPECTED = {
    "small_vocab": {"ETM302"},
    "no_max_seq_len": {"ETM203"},
    "short_context": {"ETM205", "ETM507", "ETM602"},
    "eos_missing_eot": {"ETM401", "ETM402"},
    "eos_singular": {"ETM206", "ETM401", "ETM402"},
    "eos_wrong_type": {"ETM213"},
}
ALWAYS = {"ETM408"}


def findings(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    main(["--no-config", "--output-format", "json", *args])
    return json.loads(capsys.readouterr().out)


def codes(capsys: pytest.CaptureFixture[str], *args: str) -> set[str]:
    return {f["code"] for f in findings(capsys, *args)}


def test_good_fixtures_have_no_errors_or_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("good.etm", "good_ext.etm"):
        assert codes(capsys, str(FIXTURES / name)) == ALWAYS


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_fixture_gets_its_findings(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert codes(capsys, str(BROKEN / f"{name}.etm")) == EXPECTED[name] | ALWAYS


def test_select_etm4_shows_only_bos_eos(capsys: pytest.CaptureFixture[str]) -> None:
    found = codes(capsys, "--select", "ETM4", str(BROKEN / "eos_singular.etm"))
    assert found == {"ETM401", "ETM402", "ETM408"}


def test_stories_bundle_findings_are_explained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # stories260K ends stories on BOS and declares it: no EOS finding. Its
    # SentencePiece tokenizer streams byte pieces as literal "<0xC3>" text in
    # the runtime (ETM305), and it is a base model with no template (ETM505).
    for bundle in ("stories260K.etm", "stories260K_ext.etm"):
        found = findings(capsys, "--verify-hashes", str(EXAMPLES / bundle))
        assert {(f["code"], f["severity"]) for f in found} == {
            ("ETM305", "warning"),
            ("ETM505", "info"),
        }
        message = next(f["message"] for f in found if f["code"] == "ETM305")
        assert "<0xC3>" in message


def test_a_folder_of_loose_files_lints_like_its_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = FIXTURES / "src"
    folder = tmp_path / "loose"
    folder.mkdir()
    shutil.copy(src / "eos_missing_eot.pte", folder / "model.pte")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(src / name, folder / name)
    loose = codes(capsys, str(folder))
    assert loose == codes(capsys, str(BROKEN / "eos_missing_eot.etm"))


def test_folder_without_a_program_is_one_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = findings(capsys, str(tmp_path))
    assert [f["code"] for f in found] == ["ETM101"]
    assert "no .pte program" in found[0]["message"]
