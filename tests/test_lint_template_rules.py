"""Template, special-token and generation rules on real programs and tokenizers.

Each case packs the fixture program and tokenizer (a real export and a real
tokenizer.json) with one thing changed: the template, a token setting, a
sampling setting. The passing case is the fixture as built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from etm_lint.cli.lint import main
from etm_lint.format.pack import pack_bundle
from tests.conftest import FIXTURES

SRC = FIXTURES / "src"
CHATML = json.loads((SRC / "tokenizer_config.json").read_text())["chat_template"]
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}"
    "<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant"
    "<|end_header_id|>\n\n{% endif %}"
)
NO_GEN_PROMPT = (
    "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
)


def lint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], **changes: Any
) -> set[str]:
    bundle = tmp_path / "case.etm"
    options: dict[str, Any] = {"hf_dir": SRC, "num_bos": 1, "num_eos": 0}
    options.update(changes)
    pack_bundle(
        bundle, program=SRC / "good.pte", tokenizer=SRC / "tokenizer.json", **options
    )
    main(["--no-config", "--output-format", "json", str(bundle)])
    return {f["code"] for f in json.loads(capsys.readouterr().out)} - {"ETM408"}


def test_the_fixture_as_built_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lint(tmp_path, capsys) == set()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for m in messages %}{{ m.content }}", {"ETM501"}),
        ("{{ raise_exception('only system-first chats') }}", {"ETM502"}),
        (CHATML.replace("message['content']", "message['contnet']"), {"ETM502"}),
        ("{{ default_system_prompt }}" + CHATML, {"ETM503"}),
        (
            "{% for i in range(99999) %}{% for j in range(99999) %}x"
            "{% endfor %}{% endfor %}",
            {"ETM504"},
        ),
        (NO_GEN_PROMPT, {"ETM506"}),
        (
            "{% if messages[0].role == 'system' %}"
            "{{ raise_exception('System role not supported') }}{% endif %}" + CHATML,
            {"ETM508"},
        ),
    ],
    ids=[
        "syntax",
        "raises",
        "concatenates-undefined",
        "prints-undefined",
        "loops",
        "no-gen-prompt",
        "no-system",
    ],
)
def test_template_rules(
    template: str,
    expected: set[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = lint(tmp_path, capsys, chat_template=template)
    assert expected <= found
    assert not {c for c in found - expected if c.startswith("ETM5")}


def test_tool_call_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = (
        "{% for m in messages %}{% if m.role == 'tool' %}"
        "{{ raise_exception('tool role unsupported') }}{% endif %}{% endfor %}"
        "{% if tools %}{{ tools | length }}{% endif %}" + CHATML
    )
    assert "ETM509" in lint(tmp_path, capsys, chat_template=template)


def test_markers_the_tokenizer_splits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Llama 3 template on a ChatML tokenizer: <|start_header_id|> and
    # <|eot_id|> are not tokens of this tokenizer.
    found = lint(tmp_path, capsys, chat_template=LLAMA3, num_bos=0)
    assert "ETM409" in found


def test_double_bos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = "{{ bos_token }}" + CHATML
    assert "ETM404" in lint(tmp_path, capsys, chat_template=template, num_bos=1)
    assert "ETM404" not in lint(tmp_path, capsys, chat_template=template, num_bos=0)


def test_declared_token_not_in_the_tokenizer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = {"eos": ["<|endoftext|>", "<|eot_id|>"]}
    assert "ETM406" in lint(tmp_path, capsys, special_tokens=tokens)


def test_bos_that_disagrees_with_the_runtime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # BOS declared as <|im_start|> (id 2): the runtime's BOS follows the
    # config, the program says get_bos_id = 1.
    found = lint(tmp_path, capsys, special_tokens={"bos": "<|im_start|>"})
    assert "ETM407" in found


def test_num_bos_with_a_tokenizer_that_adds_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads((SRC / "tokenizer.json").read_text())
    document["post_processor"] = None
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(json.dumps(document))
    bundle = tmp_path / "case.etm"
    pack_bundle(
        bundle, program=SRC / "good.pte", tokenizer=tokenizer, hf_dir=SRC, num_bos=1
    )
    main(["--no-config", "--select", "ETM410", "--output-format", "json", str(bundle)])
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["ETM410"]


@pytest.mark.parametrize(
    ("generation", "expected"),
    [
        ({"temperature": -0.5}, "ETM601"),
        ({"top_p": 0.0}, "ETM601"),
        ({"max_new_tokens": 4096}, "ETM602"),
        ({"stop": [""]}, "ETM603"),
    ],
)
def test_generation_rules(
    generation: dict[str, Any],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert lint(tmp_path, capsys, generation=generation) == {expected}


def test_end_of_turn_marker_missing_from_eos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The program stops on <|im_end|> and <|endoftext|>; a template that ends
    # turns with <|im_start|> ends them on an id the runner never stops on.
    template = CHATML.replace("<|im_end|>", "<|im_start|>")
    assert "ETM402" in lint(tmp_path, capsys, chat_template=template)
