"""``etm render``: llama.cpp's goldens through the command line, and token ids
of a bundle's prompt against the Hugging Face tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from etm_lint.cli.etm import main
from tests.conftest import FIXTURES, REAL

GOLDENS = REAL / "peer_tests" / "llama.cpp__tests_chat"
TEMPLATES = sorted(GOLDENS.glob("templates/*.jinja")) if GOLDENS.is_dir() else []


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.stem for t in TEMPLATES])
def test_simple_golden_through_the_cli(
    template: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    golden = GOLDENS / "goldens" / f"{template.stem}-simple.txt"
    context = GOLDENS / "contexts" / "simple.json"
    args = ["--template", str(template), "--context", str(context)]
    code = main(["render", *args, "--now", "2024-07-26"])
    assert code == 0
    # Exactly the golden's bytes: no added newline.
    assert capsysbinary.readouterr().out == golden.read_bytes()


def test_all_38_simple_goldens_are_covered() -> None:
    if not TEMPLATES:
        pytest.skip("../shared/real is not beside this checkout")
    assert len(TEMPLATES) == 38


def test_bundle_prompt_and_tokens_match_hugging_face(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "The cat sees a dog."},
    ]
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(messages))
    assert (
        main(
            ["render", str(FIXTURES / "good.etm"), "--messages", str(path), "--tokens"]
        )
        == 0
    )
    out = capsys.readouterr().out
    prompt, _, tail = out.partition("\n--- ")
    expected_prompt = (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nThe cat sees a dog.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prompt == expected_prompt
    reference = Tokenizer.from_file(str(FIXTURES / "src" / "tokenizer.json"))
    ids = json.loads(tail.splitlines()[1])
    # The bundle asks for one BOS; the tokenizer's post-processor adds it.
    assert ids == reference.encode(expected_prompt).ids


def test_base_model_has_no_template(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.json"
    path.write_text('[{"role": "user", "content": "hi"}]')
    bundle = str(FIXTURES.parent / "examples" / "stories260K.etm")
    assert main(["render", bundle, "--messages", str(path)]) == 2
    assert "no chat template" in capsys.readouterr().err


def test_context_needs_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "t.jinja"
    template.write_text("{{ messages }}")
    context = tmp_path / "c.json"
    context.write_text("{}")
    assert main(["render", "--template", str(template), "--context", str(context)]) == 2
    assert "messages list" in capsys.readouterr().err
